"""The leak and exit layer on real servers (issue 10, part B): many requests ending every
way leave no threads, file descriptors or per-request objects behind, and the lifespan
shutdown runs on SIGTERM and Ctrl+C for every server that exits normally on them."""
