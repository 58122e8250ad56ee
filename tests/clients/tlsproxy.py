"""A TLS-terminating TCP forwarder on 127.0.0.1 for clients that only speak HTTPS to an account endpoint.

rclone 1.60's azureblob backend builds the account URL as `https://<account>.<endpoint>` (no http, no path
style). With `endpoint = x@127.0.0.1:<tls port>/<account>` that URL parses as user info `<account>.x`, host
`127.0.0.1:<tls port>` and path `/<account>`: a path-style HTTPS URL. This forwarder answers its TLS (a fresh
self-signed certificate for IP 127.0.0.1, which the client trusts through `--ca-cert`) and passes the plain bytes
both ways to blobseal's Azure port, as a TLS-terminating reverse proxy in front of blobseal would.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
from pathlib import Path


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) PEM files of a new self-signed certificate for IP 127.0.0.1 (and `localhost`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "blobseal-test 127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "tls-cert.pem", directory / "tls-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TlsForwarder:
    """Listens with TLS on a free 127.0.0.1 port and forwards every connection to 127.0.0.1:`target_port`."""

    def __init__(self, target_port: int, directory: Path):
        self.target_port = target_port
        self.cert_path, key_path = self_signed_cert(directory)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(self.cert_path, key_path)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.errors: list[str] = []  # handshakes the client refused (it distrusts the certificate), failed connects
        self.closed = False
        threading.Thread(target=self._accept, name="tls-accept", daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self.lock:
            self.open.add(sock)

    def _accept(self) -> None:
        while True:
            try:
                raw, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._serve, args=(raw,), name="tls-conn", daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        self._track(raw)
        raw.settimeout(30)  # for the handshake only
        try:
            tls = self.ctx.wrap_socket(raw, server_side=True)
        except (OSError, ssl.SSLError) as err:
            # A client that exits with a connection half set up (EOF, reset) is no error; an alert from it
            # (unknown CA, bad certificate) is: the client does not trust the forwarder.
            if "ALERT" in str(err).upper():
                self.errors.append(f"handshake: {err}")
            raw.close()
            return
        tls.settimeout(None)
        self._track(tls)
        try:
            plain = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
        except OSError as err:
            self.errors.append(f"connect to {self.target_port}: {err}")
            tls.close()
            return
        plain.settimeout(None)
        self._track(plain)
        threading.Thread(target=self._pump, args=(plain, tls), name="tls-down", daemon=True).start()
        self._pump(tls, plain)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        """Copy `src` to `dst` until `src` ends; then end `dst` (both sockets are closed by the last pump)."""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.closed = True
        self.listener.close()
        with self.lock:
            socks = list(self.open)
        for sock in socks:
            try:
                sock.close()
            except OSError:
                pass
