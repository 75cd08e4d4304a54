"""Pure translation between an ASGI HTTP scope and a PEP 3333 environ.

No threads and no I/O here (a test holds this rule). The encoding rules:

* WSGI strings are "bytes as unicode": every character is one byte, shown as latin-1.
* ASGI ``path`` and ``root_path`` are percent-decoded, then UTF-8 decoded text;
  ``raw_path`` keeps the bytes as received. Nothing is ever percent-decoded twice.
* Header names and values, and the query string, are bytes in ASGI and latin-1 text
  in WSGI, which round-trips every byte.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping
from urllib.parse import quote, unquote_to_bytes

from ._types import Environ, Scope
from .errors import BadRequestError, BridgeError, InvalidScopeError
from .wsgi_streams import FileWrapper

__all__ = [
    "DEFAULT_MAX_DUPLICATE_HEADERS",
    "build_environ",
    "build_scope",
    "http_version_from_protocol",
    "text_to_wsgi",
    "wsgi_to_text",
]

DEFAULT_MAX_DUPLICATE_HEADERS = 100

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_TLS_VERSIONS = {0x0300: "SSLv3", 0x0301: "TLSv1", 0x0302: "TLSv1.1", 0x0303: "TLSv1.2", 0x0304: "TLSv1.3"}
# Repeats of these cannot be comma-joined into something meaningful.
_SINGLE_VALUED = frozenset({"CONTENT_LENGTH", "HTTP_HOST"})
# Header name -> environ key, for names seen before. Bounded so that a client sending
# random names cannot grow it without limit.
_KEYS: dict[bytes, str] = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_KEYS_LIMIT = 512
# Characters that may stay unquoted when a path is rebuilt into a request target.
_PATH_SAFE = "/:@!$&'()*+,;=~"


def text_to_wsgi(text: str) -> str:
    """ASGI text (a decoded path) -> WSGI "bytes as unicode" string."""
    return text.encode("utf-8", "surrogateescape").decode("latin-1")


def wsgi_to_text(value: str) -> str:
    """WSGI "bytes as unicode" string -> text, as ASGI servers decode paths."""
    return value.encode("latin-1").decode("utf-8", "replace")


def build_environ(
    scope: Scope,
    *,
    errors: Any,
    multithread: bool = True,
    max_duplicate_headers: int = DEFAULT_MAX_DUPLICATE_HEADERS,
) -> Environ:
    """Build a PEP 3333 environ from an ASGI ``http`` scope, without ``wsgi.input``.

    ``errors`` becomes ``wsgi.errors``. Raises :class:`BadRequestError` for a request
    that has no faithful environ (the adapter answers 400) and
    :class:`InvalidScopeError` for a scope that breaks the ASGI spec.
    """
    try:
        return _build(scope, errors, multithread, max_duplicate_headers)
    except BridgeError:
        raise
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as exc:
        raise InvalidScopeError(f"malformed ASGI http scope ({type(exc).__name__}: {exc})") from exc


def _build(scope: Scope, errors: Any, multithread: bool, max_duplicates: int) -> Environ:
    method = scope["method"]
    if type(method) is not str or not method:
        raise InvalidScopeError(f"scope['method'] must be a non-empty str, got {method!r}")
    scheme = scope.get("scheme") or "http"
    if scheme not in _DEFAULT_PORTS:
        raise InvalidScopeError(f"scope['scheme'] must be 'http' or 'https' in an http scope, got {scheme!r}")
    query = scope.get("query_string") or b""
    script_name, path_info, target = _paths(scope)
    query_str = query.decode("latin-1")
    if query_str:
        target = f"{target}?{query_str}"

    environ: Environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": script_name,
        "PATH_INFO": path_info,
        "QUERY_STRING": query_str,
        "REQUEST_URI": target,
        "RAW_URI": target,
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version') or '1.1'}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scheme,
        "wsgi.errors": errors,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": FileWrapper,
        "asgi.scope": scope,
    }
    _add_headers(environ, scope.get("headers") or (), max_duplicates)

    server = scope.get("server")
    if server is not None and server[1] is not None:
        environ["SERVER_NAME"] = str(server[0])
        environ["SERVER_PORT"] = str(server[1])
    else:
        # No TCP server address (None, or a unix socket): fall back to Host, as CGI does.
        name, port = _split_host(environ.get("HTTP_HOST", ""))
        environ["SERVER_NAME"] = name or "localhost"
        environ["SERVER_PORT"] = port or _DEFAULT_PORTS[scheme]
    client = scope.get("client")
    if client is not None:
        environ["REMOTE_ADDR"] = str(client[0])
        if client[1] is not None:
            environ["REMOTE_PORT"] = str(client[1])
    if scheme == "https":
        environ["HTTPS"] = "on"
    extensions = scope.get("extensions")
    if extensions:
        tls = extensions.get("tls")
        if tls:
            _add_tls(environ, tls)
    return environ


def _paths(scope: Scope) -> tuple[str, str, str]:
    """Return SCRIPT_NAME, PATH_INFO and the raw request target (without query)."""
    path = scope["path"]
    if type(path) is not str:
        raise InvalidScopeError(f"scope['path'] must be a str, got {type(path).__name__}")
    raw = scope.get("raw_path")
    full: str | None = None
    target: str | None = None
    if raw:
        raw_str = raw.decode("latin-1")
        if b"%" not in raw:
            # Nothing percent-encoded: consistent when raw decodes to the same text.
            if raw_str == path or raw.decode("utf-8", "replace") == path:
                full = raw_str
        else:
            decoded = unquote_to_bytes(raw)
            if decoded.decode("utf-8", "replace") == path:
                # Keeps bytes such as %FF that `path` has already turned into U+FFFD.
                full = decoded.decode("latin-1")
        if full is not None:
            target = raw_str
    if full is None:
        # No raw_path, or middleware rewrote `path`: `path` is the truth.
        full = text_to_wsgi(path)
        target = quote(full.encode("latin-1"), safe=_PATH_SAFE)
    assert target is not None

    root = scope.get("root_path")
    if not root:
        return "", full, target
    script_name = text_to_wsgi(root).rstrip("/")
    if not script_name:
        return "", full, target
    # ASGI `path` includes `root_path`; strip it only on a segment boundary, so that
    # a mount at /app never eats the start of /apple.
    if full == script_name:
        return script_name, "", target
    if full.startswith(script_name) and full[len(script_name)] == "/":
        return script_name, full[len(script_name) :], target
    return script_name, full, target


def _add_headers(environ: Environ, headers: Iterable[Any], max_duplicates: int) -> None:
    repeated: dict[str, list[str]] | None = None
    for name, value in headers:
        key = _KEYS.get(name)
        if key is None:
            if b"_" in name:
                # X_Forwarded_For would land on the same key as X-Forwarded-For and let a
                # client spoof it; gunicorn, nginx and werkzeug drop these too.
                continue
            lower = name.lower()
            key = _KEYS.get(lower)
            if key is None:
                key = "HTTP_" + lower.decode("latin-1").upper().replace("-", "_")
                if len(_KEYS) < _KEYS_LIMIT:
                    _KEYS[lower] = key
        text = value.decode("latin-1")
        if key not in environ:
            environ[key] = text
            continue
        if repeated is None:
            repeated = {}
        values = repeated.get(key)
        if values is None:
            values = repeated[key] = [environ[key]]
        if len(values) >= max_duplicates:
            raise BadRequestError(
                f"more than {max_duplicates} {name.decode('latin-1')!r} headers in one request"
            )
        values.append(text)
    if repeated:
        for key, values in repeated.items():
            if key in _SINGLE_VALUED:
                if any(v != values[0] for v in values):
                    raise BadRequestError(
                        f"conflicting values for the single-valued header {key}: {values!r}"
                    )
                continue
            # HTTP/2 splits cookies into several fields; they join with "; " (RFC 9113 8.2.3).
            environ[key] = ("; " if key == "HTTP_COOKIE" else ",").join(values)


def _split_host(host: str) -> tuple[str, str]:
    if host.startswith("["):
        end = host.find("]")
        if end == -1:
            return "", ""
        name, rest = host[1:end], host[end + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = host.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        port = ""
    return name, port


def _add_tls(environ: Environ, tls: Mapping[str, Any]) -> None:
    environ["HTTPS"] = "on"
    version = tls.get("tls_version")
    if version in _TLS_VERSIONS:
        environ["SSL_PROTOCOL"] = _TLS_VERSIONS[version]
    server_cert = tls.get("server_cert")
    if server_cert:
        environ["SSL_SERVER_CERT"] = server_cert
    chain = tls.get("client_cert_chain")
    if chain:
        environ["SSL_CLIENT_CERT"] = chain[0]
    name = tls.get("client_cert_name")
    if name:
        environ["SSL_CLIENT_S_DN"] = name
    if chain:
        error = tls.get("client_cert_error")
        environ["SSL_CLIENT_VERIFY"] = "SUCCESS" if not error else f"FAILED:{error}"
    else:
        environ["SSL_CLIENT_VERIFY"] = "NONE"


# -- environ -> scope (AsgiToWsgi) -----------------------------------------------------

_HTTP_VERSIONS = {"1.0": "1.0", "1.1": "1.1", "2": "2", "2.0": "2", "3": "3", "3.0": "3", "0.9": "1.0"}
_NOT_HEADERS = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})


def http_version_from_protocol(protocol: object) -> str:
    """``SERVER_PROTOCOL`` -> ASGI ``http_version``; never fails on odd CGI values."""
    if not isinstance(protocol, str) or not protocol:
        return "1.0"
    version = protocol[5:] if protocol[:5].upper() == "HTTP/" else protocol
    return _HTTP_VERSIONS.get(version.strip(), "1.1")


def _int_or_none(value: object) -> int | None:
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


def _raw_path_from_environ(environ: Environ, full: str) -> bytes | None:
    """The request target's path as received, if it agrees with SCRIPT_NAME+PATH_INFO.

    Middleware such as werkzeug's DispatcherMiddleware rewrites PATH_INFO and leaves
    REQUEST_URI stale; a raw_path that disagrees would mislead the app, so it is
    left out then.
    """
    uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not uri or not isinstance(uri, str):
        return None
    target = uri.partition("?")[0]
    if "://" in target:  # absolute-form: drop scheme://authority
        target = "/" + target.split("://", 1)[1].partition("/")[2]
    try:
        raw = target.encode("latin-1")
    except UnicodeEncodeError:
        return None
    if unquote_to_bytes(raw) != full.encode("latin-1"):
        return None
    return raw


def build_scope(environ: Environ) -> Scope:
    """Build an ASGI ``http`` scope from a PEP 3333 environ.

    The environ stays reachable as ``scope["wsgi_environ"]`` for what ASGI has no key
    for (``REMOTE_USER``, ``SSL_*``, ...). Raises :class:`BadRequestError` for a
    request the ASGI app cannot be given faithfully.
    """
    try:
        return _build_scope(environ)
    except UnicodeEncodeError as exc:
        raise BadRequestError(
            f"the WSGI server put text that is not latin-1 in the environ ({exc}); PEP 3333 "
            f"strings hold bytes as latin-1 characters"
        ) from None


def _build_scope(environ: Environ) -> Scope:
    script_name = environ.get("SCRIPT_NAME", "") or ""
    full = script_name + (environ.get("PATH_INFO", "") or "")
    method = environ.get("REQUEST_METHOD") or ""
    if not method:
        raise BadRequestError("the WSGI environ has no REQUEST_METHOD")
    scheme = environ.get("wsgi.url_scheme") or "http"

    headers: list[tuple[bytes, bytes]] = []
    for key, value in environ.items():
        if key[:5] == "HTTP_" and key not in _NOT_HEADERS:
            headers.append((key[5:].lower().replace("_", "-").encode("latin-1"), value.encode("latin-1")))
    content_type = environ.get("CONTENT_TYPE")
    if content_type:
        headers.append((b"content-type", content_type.encode("latin-1")))
    content_length = environ.get("CONTENT_LENGTH")
    if content_length:
        headers.append((b"content-length", content_length.encode("latin-1")))

    server_name = environ.get("SERVER_NAME")
    server = [server_name, _int_or_none(environ.get("SERVER_PORT"))] if server_name else None
    remote = environ.get("REMOTE_ADDR")
    client = None
    if remote:
        port = _int_or_none(environ.get("REMOTE_PORT"))
        client = [remote, port if port is not None else 0]

    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http_version_from_protocol(environ.get("SERVER_PROTOCOL")),
        "method": method.upper(),
        "scheme": scheme,
        "path": wsgi_to_text(full) or "/",
        "raw_path": _raw_path_from_environ(environ, full),
        "query_string": (environ.get("QUERY_STRING") or "").encode("latin-1"),
        "root_path": wsgi_to_text(script_name),
        "headers": headers,
        "server": server,
        "client": client,
        "extensions": {},
        "wsgi_environ": environ,
    }
