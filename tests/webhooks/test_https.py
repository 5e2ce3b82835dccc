"""https endpoints: the delivery connects to the address it checked, yet TLS still checks the certificate
against the host name (SNI and hostname verification), with a CA of the test's own (WEBHOOK_CA_FILE)."""
from __future__ import annotations

import datetime
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from expertbook.webhooks import addresses


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificates(tmp_path, host: str):
    """A CA, and a server certificate it signed for ``host``; returns (ca_file, cert_file, key_file)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Test CA")).issuer_name(_name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                                       key_encipherment=False, data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name(host)).issuer_name(ca.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return paths


@pytest.fixture
def https_receiver(tmp_path):
    """An https receiver on 127.0.0.1 whose certificate names ``localhost``; yields (port, ca_file, seen hosts)."""
    ca_file, cert_file, key_file = _certificates(tmp_path, "localhost")
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_port, str(ca_file), seen
    server.shutdown()
    server.server_close()


def test_https_checks_the_certificate_against_the_host_name(app, https_receiver):
    port, ca_file, seen = https_receiver
    app.config.update(WEBHOOK_ALLOW_PRIVATE_ADDRESSES=True, WEBHOOK_CA_FILE=ca_file)
    url = f"https://localhost:{port}/hooks"
    if addresses.resolve(addresses.parse(url)) != "127.0.0.1":
        pytest.skip("localhost does not resolve to 127.0.0.1 first here")
    # Connected to 127.0.0.1, verified as "localhost": accepted.
    assert addresses.post(url, b"{}", {"Content-Type": "application/json"}, 2.0).status == 204
    assert seen == [f"localhost:{port}"]
    # The same server by its address: the certificate does not name 127.0.0.1, so TLS refuses it.
    with pytest.raises(addresses.NoAnswer, match="TLS"):
        addresses.post(f"https://127.0.0.1:{port}/hooks", b"{}", {}, 2.0)
    # And without our CA (the default bundle) nobody vouches for it.
    app.config["WEBHOOK_CA_FILE"] = None
    with pytest.raises(addresses.NoAnswer, match="TLS"):
        addresses.post(url, b"{}", {}, 2.0)
    assert len(seen) == 1
