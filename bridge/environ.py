"""Pure translation between an ASGI HTTP scope and a PEP 3333 environ.

No threads and no I/O here (a test holds this rule). The encoding rules:

* WSGI strings are "bytes as unicode": every character is one byte, shown as latin-1.
* ASGI ``path`` and ``root_path`` are percent-decoded, then UTF-8 decoded text;
  ``raw_path`` keeps the bytes as received. Nothing is ever percent-decoded twice.
* Header names and values, and the query string, are bytes in ASGI and latin-1 text
  in WSGI, which round-trips every byte.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping
from urllib.parse import quote, unquote_to_bytes

from ._types import Environ, Scope
from .errors import BadRequestError, BridgeError, InvalidScopeError
from .http import describe, parse_content_length
from .wsgi_streams import FileWrapper

__all__ = [
    "DEFAULT_MAX_DUPLICATE_HEADERS",
    "build_environ",
    "build_scope",
    "http_version_from_protocol",
    "text_to_wsgi",
    "wsgi_input_bytes",
    "wsgi_to_text",
]

DEFAULT_MAX_DUPLICATE_HEADERS = 100

_DEFAULT_PORTS = {"http": "80", "https": "443"}
# ASGI http_version -> SERVER_PROTOCOL; one lookup checks and converts the usual ones.
_PROTOCOLS: dict[object, str] = {
    "1.1": "HTTP/1.1",
    "1.0": "HTTP/1.0",
    "2": "HTTP/2",
    "3": "HTTP/3",
    None: "HTTP/1.1",
    "": "HTTP/1.1",
}
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
        # The fast path checks types only where a wrong one would pass silently; when
        # it fails, find the field to name here, off the hot path.
        problem = scope_problem(scope)
        if problem is None:
            problem = f"malformed ASGI http scope ({type(exc).__name__}: {exc})"
        raise InvalidScopeError(problem) from exc


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
        "SERVER_PROTOCOL": _server_protocol(scope.get("http_version")),
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
    port = None
    if server is not None:
        host, port = server
        if type(host) is not str or (port is not None and not _is_port(port)):
            raise InvalidScopeError(_address_problem("server", server))
    if port is not None:
        environ["SERVER_NAME"] = host
        environ["SERVER_PORT"] = str(port)
    else:
        # No TCP server address (None, or a unix socket): fall back to Host, as CGI does.
        name, port = _split_host(environ.get("HTTP_HOST", ""))
        environ["SERVER_NAME"] = name or "localhost"
        environ["SERVER_PORT"] = port or _DEFAULT_PORTS[scheme]
    client = scope.get("client")
    if client is not None:
        host, port = client
        if type(host) is not str or (port is not None and not _is_port(port)):
            raise InvalidScopeError(_address_problem("client", client))
        environ["REMOTE_ADDR"] = host
        if port is not None:
            environ["REMOTE_PORT"] = str(port)
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
    elif version is not None and type(version) is not int:
        raise _bad_tls(tls)
    server_cert = tls.get("server_cert")
    if server_cert:
        if type(server_cert) is not str and not isinstance(server_cert, str):
            raise _bad_tls(tls)
        environ["SSL_SERVER_CERT"] = server_cert
    chain = tls.get("client_cert_chain")
    if chain:
        cert = chain[0]
        if (type(chain) is not list and not isinstance(chain, (list, tuple))) or (
            type(cert) is not str and not isinstance(cert, str)
        ):
            raise _bad_tls(tls)
        environ["SSL_CLIENT_CERT"] = cert
    name = tls.get("client_cert_name")
    if name:
        if type(name) is not str and not isinstance(name, str):
            raise _bad_tls(tls)
        environ["SSL_CLIENT_S_DN"] = name
    if chain:
        error = tls.get("client_cert_error")
        if error and type(error) is not str and not isinstance(error, str):
            raise _bad_tls(tls)
        environ["SSL_CLIENT_VERIFY"] = "SUCCESS" if not error else f"FAILED:{error}"
    else:
        environ["SSL_CLIENT_VERIFY"] = "NONE"


def _bad_tls(tls: Mapping[str, Any]) -> InvalidScopeError:
    return InvalidScopeError(_tls_problem(tls) or f"malformed scope['extensions']['tls']: {describe(tls)}")


def _server_protocol(version: object) -> str:
    protocol = _PROTOCOLS.get(version)
    if protocol is not None:
        return protocol
    if not isinstance(version, str):
        raise InvalidScopeError(f"scope['http_version'] must be a str like '1.1', got {describe(version)}")
    return f"HTTP/{version}"


def _is_port(port: object) -> bool:
    # The spec says int; granian sends the port as a string of digits, and a server
    # that works with uvicorn's users must keep working: both become SERVER_PORT text.
    return type(port) is int or (type(port) is str and port.isascii() and port.isdigit())


def _address_problem(key: str, address: object) -> str:
    return f"scope[{key!r}] must be a [host: str, port: int] pair or None, got {describe(address)}"


# -- naming the ill-typed field, off the hot path ------------------------------------------


def _field(key: str, expected: str, value: object) -> str:
    return f"scope[{key!r}] must be {expected}, got {describe(value)}"


def scope_problem(scope: object) -> str | None:
    """What is ill-typed in an ASGI ``http`` scope, naming the field; None if nothing.

    The check :func:`build_environ` runs when building failed, to say which field
    broke the ASGI spec; it follows the types the spec gives each field (``None``
    standing for an optional field's default).
    """
    if not isinstance(scope, Mapping):
        return f"an ASGI scope must be a dict, got {describe(scope)}"
    for key in ("method", "path"):
        if key not in scope:
            return f"the ASGI http scope has no {key!r}"
    method = scope["method"]
    if not isinstance(method, str) or not method:
        return _field("method", "a non-empty str", method)
    if not isinstance(scope["path"], str):
        return _field("path", "a str", scope["path"])
    for key in ("scheme", "root_path", "http_version"):
        value = scope.get(key)
        if value is not None and not isinstance(value, str):
            return _field(key, "a str", value)
    for key in ("raw_path", "query_string"):
        value = scope.get(key)
        if value is not None and not isinstance(value, (bytes, bytearray)):
            return _field(key, "bytes", value)
    headers = scope.get("headers")
    if headers is not None:
        try:
            items = list(headers)
        except TypeError:
            return _field("headers", "an iterable of [name, value] pairs", headers)
        for index, pair in enumerate(items):
            if (
                not isinstance(pair, (list, tuple))
                or len(pair) != 2
                or not isinstance(pair[0], bytes)
                or not isinstance(pair[1], (bytes, bytearray))
            ):
                return (
                    f"scope['headers'][{index}] must be a [name, value] pair of bytes, got {describe(pair)}"
                )
    for key in ("server", "client"):
        address = scope.get(key)
        if address is not None and (
            not isinstance(address, (list, tuple))
            or len(address) != 2
            or not isinstance(address[0], str)
            or not (address[1] is None or type(address[1]) is int)
        ):
            return _address_problem(key, address)
    extensions = scope.get("extensions")
    if extensions is not None:
        if not isinstance(extensions, Mapping):
            return _field("extensions", "a dict", extensions)
        tls = extensions.get("tls")
        if tls is not None:
            return _tls_problem(tls)
    return None


def _tls_problem(tls: object) -> str | None:
    where = "scope['extensions']['tls']"
    if not isinstance(tls, Mapping):
        return f"{where} must be a dict, got {describe(tls)}"
    version = tls.get("tls_version")
    if version is not None and type(version) is not int:
        return f"{where}['tls_version'] must be an int, got {describe(version)}"
    for key in ("server_cert", "client_cert_name", "client_cert_error"):
        value = tls.get(key)
        if value is not None and not isinstance(value, str):
            return f"{where}[{key!r}] must be a str, got {describe(value)}"
    chain = tls.get("client_cert_chain")
    if chain is not None and (
        not isinstance(chain, (list, tuple)) or not all(isinstance(cert, str) for cert in chain)
    ):
        return f"{where}['client_cert_chain'] must be a list of str, got {describe(chain)}"
    return None


# -- environ -> scope (AsgiToWsgi) -----------------------------------------------------

_HTTP_VERSIONS = {"1.0": "1.0", "1.1": "1.1", "2": "2", "2.0": "2", "3": "3", "3.0": "3", "0.9": "1.0"}
# The usual SERVER_PROTOCOL values, found in one lookup.
_PROTOCOL_VERSIONS: dict[object, str] = {"HTTP/1.1": "1.1", "HTTP/1.0": "1.0", "HTTP/2.0": "2", "HTTP/2": "2"}
_NOT_HEADERS = frozenset({"HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"})
_HEADER_KEY = re.compile("HTTP_").match
# HTTP_* keys and the ASGI header names they became (bounded, as _KEYS).
_HEADER_NAMES: dict[str, bytes] = {}
# The CGI keys build_scope reads as text (besides HTTP_*), for naming an ill-typed one.
_TEXT_KEYS = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "SERVER_NAME",
    "SERVER_PROTOCOL",
    "REMOTE_ADDR",
    "CONTENT_TYPE",
    "CONTENT_LENGTH",
    "RAW_URI",
    "REQUEST_URI",
    "wsgi.url_scheme",
)
_PORT_KEYS = ("SERVER_PORT", "REMOTE_PORT")


def http_version_from_protocol(protocol: object) -> str:
    """``SERVER_PROTOCOL`` -> ASGI ``http_version``; never fails on odd CGI values."""
    if not isinstance(protocol, str) or not protocol:
        return "1.0"
    version = protocol[5:] if protocol[:5].upper() == "HTTP/" else protocol
    return _HTTP_VERSIONS.get(version.strip(), "1.1")


def _port(environ: Environ, key: str) -> int | None:
    """SERVER_PORT or REMOTE_PORT as an int; None if absent or not a number.

    An int is accepted as well as a str: werkzeug's dev server sets REMOTE_PORT so.
    """
    value = environ.get(key)
    if type(value) is str or isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    if value is None or type(value) is int:
        return value
    raise InvalidScopeError(environ_type_problem(key, value, "a str (or an int)"))


def _raw_path_from_environ(environ: Environ, full: str) -> bytes | None:
    """The request target's path as received, if it agrees with SCRIPT_NAME+PATH_INFO.

    Middleware such as werkzeug's DispatcherMiddleware rewrites PATH_INFO and leaves
    REQUEST_URI stale; a raw_path that disagrees would mislead the app, so it is
    left out then.
    """
    uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not uri:
        return None
    if not isinstance(uri, str):
        key = "RAW_URI" if environ.get("RAW_URI") else "REQUEST_URI"
        raise InvalidScopeError(environ_type_problem(key, uri))
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
    request the ASGI app cannot be given faithfully (a bad ``CONTENT_LENGTH``, no
    ``REQUEST_METHOD``), and :class:`InvalidScopeError`, naming the key, for an environ
    that breaks PEP 3333: a key or CGI value that is not a ``str``, or text that is not
    latin-1 (a bug in the WSGI server or in middleware in front of the adapter).
    """
    try:
        return _build_scope(environ)
    except (TypeError, AttributeError, UnicodeEncodeError):
        # The fast path checks types only where a wrong one would pass silently; when
        # it fails, find the key to name here, off the hot path.
        problem = environ_problem(environ)
        if problem is None:
            raise
        raise InvalidScopeError(problem) from None


def _build_scope(environ: Environ) -> Scope:
    script_name = environ.get("SCRIPT_NAME", "")
    if type(script_name) is not str:
        script_name = _environ_text(environ, "SCRIPT_NAME")
    path_info = environ.get("PATH_INFO", "")
    if type(path_info) is not str:
        path_info = _environ_text(environ, "PATH_INFO")
    full = script_name + path_info
    method = environ.get("REQUEST_METHOD")
    if type(method) is not str:
        method = _environ_text(environ, "REQUEST_METHOD")
    if not method:
        raise BadRequestError("the WSGI environ has no REQUEST_METHOD")
    scheme = environ.get("wsgi.url_scheme")
    if type(scheme) is not str:
        scheme = _environ_text(environ, "wsgi.url_scheme")
    query = environ.get("QUERY_STRING", "")
    if type(query) is not str:
        query = _environ_text(environ, "QUERY_STRING")

    headers: list[tuple[bytes, bytes]] = []
    # The HTTP_ keys found in C (an environ has two or three times as many others).
    # The match raises for a key that is not a str (PEP 3333 keys are), which
    # environ_problem then names.
    for key in filter(_HEADER_KEY, environ):
        name = _HEADER_NAMES.get(key)
        if name is None:
            if key in _NOT_HEADERS:
                continue
            name = key[5:].lower().replace("_", "-").encode("latin-1")
            if len(_HEADER_NAMES) < _KEYS_LIMIT:
                _HEADER_NAMES[key] = name
        headers.append((name, environ[key].encode("latin-1")))
    content_type = environ.get("CONTENT_TYPE")
    if content_type:
        headers.append((b"content-type", content_type.encode("latin-1")))
    content_length = environ.get("CONTENT_LENGTH")
    if content_length:
        if not (content_length.isdigit() and content_length.isascii()):
            content_length = _checked_content_length(content_length)
        headers.append((b"content-length", content_length.encode("latin-1")))

    server_name = environ.get("SERVER_NAME")
    server = None
    if server_name:
        if type(server_name) is not str:
            server_name = _environ_text(environ, "SERVER_NAME")
        server = [server_name, _port(environ, "SERVER_PORT")]
    remote = environ.get("REMOTE_ADDR")
    client = None
    if remote:
        if type(remote) is not str:
            remote = _environ_text(environ, "REMOTE_ADDR")
        port = _port(environ, "REMOTE_PORT")
        client = [remote, port if port is not None else 0]
    protocol = environ.get("SERVER_PROTOCOL")
    http_version = _PROTOCOL_VERSIONS.get(protocol)
    if http_version is None:
        if protocol is not None and not isinstance(protocol, str):
            raise InvalidScopeError(environ_type_problem("SERVER_PROTOCOL", protocol))
        http_version = http_version_from_protocol(protocol)

    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http_version,
        "method": method.upper(),
        "scheme": scheme or "http",
        "path": wsgi_to_text(full) or "/",
        "raw_path": _raw_path_from_environ(environ, full),
        "query_string": query.encode("latin-1"),
        "root_path": wsgi_to_text(script_name),
        "headers": headers,
        "server": server,
        "client": client,
        # Path Send: the WSGI thread opens the file and hands it to the server's
        # wsgi.file_wrapper (gunicorn then uses sendfile).
        "extensions": {"http.response.pathsend": {}},
        "wsgi_environ": environ,
    }


def _checked_content_length(value: str) -> str:
    """A CONTENT_LENGTH that is not plain digits: without the spaces or tabs around it
    (RFC 9110 OWS), so that the app sees the value the adapter reads the body by."""
    try:
        return str(parse_content_length(value))
    except ValueError as exc:
        raise BadRequestError(f"invalid CONTENT_LENGTH: {exc}") from None


def _environ_text(environ: Environ, key: str) -> str:
    """The slow path of a CGI key that is not exactly a str: None stands for an absent
    key; a str subclass is taken; anything else breaks PEP 3333."""
    value = environ.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        return str(value)
    raise InvalidScopeError(environ_type_problem(key, value))


def environ_type_problem(key: str, value: object, expected: str = "a str") -> str:
    return (
        f"the WSGI environ's {key!r} must be {expected} (PEP 3333), got {describe(value)}: "
        f"a bug in the WSGI server or in middleware in front of the adapter"
    )


def environ_problem(environ: object) -> str | None:
    """What breaks PEP 3333 in the parts of a WSGI environ :func:`build_scope` reads,
    naming the key; None if nothing.

    The check build_scope runs when building failed: a key that is not a str, a CGI
    value (``HTTP_*`` included) that is not a str, text that is not latin-1.
    """
    if not isinstance(environ, Mapping):
        return f"a WSGI environ must be a dict, got {describe(environ)}"
    for key in environ:
        if not isinstance(key, str):
            return (
                f"the WSGI environ has a key that is not a str: {describe(key)} (PEP 3333): "
                f"a bug in the WSGI server or in middleware in front of the adapter"
            )
    keys = [key for key in environ if key.startswith("HTTP_") and key not in _NOT_HEADERS]
    for key in (*_TEXT_KEYS, *keys):
        value = environ.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            return environ_type_problem(key, value)
        for text in (key, value):
            try:
                text.encode("latin-1")
            except UnicodeEncodeError:
                return (
                    f"the WSGI environ's {key!r} holds text that is not latin-1: {describe(value)}; "
                    f"PEP 3333 strings hold bytes as latin-1 characters (a bug in the WSGI server "
                    f"or in middleware in front of the adapter, such as one that decodes "
                    f"PATH_INFO as UTF-8)"
                )
    for key in _PORT_KEYS:
        value = environ.get(key)
        if value is not None and (not isinstance(value, (str, int)) or isinstance(value, bool)):
            return environ_type_problem(key, value, "a str (or an int)")
    return None


def wsgi_input_bytes(data: object) -> bytes:
    """What ``wsgi.input.read()`` returned, as bytes (a bytearray or memoryview is
    copied); :class:`InvalidScopeError` naming ``wsgi.input`` for a str or anything
    else, which breaks PEP 3333 (a bug in the WSGI server or in middleware)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    raise InvalidScopeError(
        f"the WSGI environ's 'wsgi.input'.read() must return bytes (PEP 3333), got {describe(data)}: "
        f"a bug in the WSGI server or in middleware in front of the adapter"
    )
