"""A real SMTP server for the invite-mail tests (Debian's python3-aiosmtpd), with AUTH.

usage: SINK_PASSWORD=PASSWORD smtp-sink.py DIR PORT USER [CERT KEY]
Listens on 127.0.0.1:PORT (0: any free port) and prints {"port": N} once it does; with CERT and KEY (PEM)
it speaks SMTPS (TLS from the first byte). Every client must
sign in as USER/PASSWORD (AUTH PLAIN or LOGIN; allowed without TLS, on loopback only). Each message that
arrives is written to DIR/<n>.json: {mailFrom, rcptTos, user, subject, from, to, text}.
"""
import asyncio
import json
import os
import ssl
import sys
from email import message_from_bytes, policy

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

out_dir, port, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
password = os.environ["SINK_PASSWORD"]
tls = None
if len(sys.argv) > 5:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(sys.argv[4], sys.argv[5])


class Sink:
    def __init__(self):
        # Restarted on the same directory: number on after what arrived before.
        self.count = len([f for f in os.listdir(out_dir) if f.endswith(".json")])

    async def handle_DATA(self, server, session, envelope):
        msg = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        body = msg.get_body(preferencelist=("plain",))
        self.count += 1
        auth = getattr(session, "auth_data", None)
        record = {
            "mailFrom": envelope.mail_from,
            "rcptTos": envelope.rcpt_tos,
            "user": auth.decode() if isinstance(auth, bytes) else auth,
            "subject": str(msg["subject"]),
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "text": body.get_content() if body is not None else "",
        }
        tmp = os.path.join(out_dir, f".{self.count}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(out_dir, f"{self.count}.json"))
        return "250 OK"


def authenticate(server, session, envelope, mechanism, auth_data):
    if isinstance(auth_data, LoginPassword) and auth_data.login == user.encode() and auth_data.password == password.encode():
        return AuthResult(success=True, auth_data=auth_data.login)
    return AuthResult(success=False, handled=False)


async def main():
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, hostname="sink.test", authenticator=authenticate, auth_required=True, auth_require_tls=False),
        "127.0.0.1",
        port,
        ssl=tls,
    )
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    await server.serve_forever()


asyncio.run(main())
