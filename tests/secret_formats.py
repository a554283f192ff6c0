"""Fake secrets of every format `SecretRedactor` knows by shape, built at run time.

One maker per format (vendor prefix, alphabet, length as the vendors publish
them); each draws its random part from a seeded `random.Random`. No string in
this file is a key: prefixes and bodies are joined only when a test runs.
`FORMATS` maps a format's name to its maker; a maker returns a `Secret` whose
``needle`` (the random part) must never reach a file.
"""

from __future__ import annotations

import base64
import random
import string
from collections.abc import Callable

from .strategies import Secret

__all__ = ["FORMATS", "make_benign_corpus", "make_format"]

_AN = string.ascii_letters + string.digits
_LOW = string.ascii_lowercase + string.digits
_UP = string.ascii_uppercase + string.digits
_HEX = "0123456789abcdef"
_B64URL = _AN + "_-"
_B64 = _AN + "+/"
_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l".upper()


def _p(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _prefixed(kind: str, prefix: str, alphabet: str, n: int) -> Callable[[random.Random], Secret]:
    """A maker of ``prefix + n random characters``; the needle is the random part."""

    def make(rng: random.Random) -> Secret:
        body = _p(rng, alphabet, n)
        return Secret(kind, prefix + body, body)

    return make


def _j(*parts: str) -> str:
    return "".join(parts)


def _github_fine(rng: random.Random) -> Secret:
    body = _p(rng, _AN, 22) + "_" + _p(rng, _AN, 59)
    return Secret("github_token", _j("github", "_pat_", body), body)


def _gitlab(prefix: str) -> Callable[[random.Random], Secret]:
    return _prefixed("gitlab_token", _j("gl", prefix, "-"), _AN + "_-", 20)


def _stripe(prefix: str) -> Callable[[random.Random], Secret]:
    return _prefixed("stripe_key", _j(prefix, "k_", "live_"), _AN, 24 + 75)


def _aws_secret(rng: random.Random) -> Secret:
    value = _p(rng, _B64, 40)
    name = rng.choice(("AWS_SECRET_ACCESS_KEY", "SecretAccessKey", "aws_secret_access_key"))
    return Secret("aws_secret_key", f"{name}={value}", value)


def _aws_session(rng: random.Random) -> Secret:
    body = _p(rng, _B64, 300)
    head = rng.choice((_j("IQoJb3Jp", "Z2luX2Vj"), _j("FwoGZXIv", "YXdz")))
    return Secret("aws_session_token", head + body, body)


def _azure_conn(rng: random.Random) -> Secret:
    key = base64.b64encode(rng.randbytes(64)).decode()
    text = _j(
        "DefaultEndpointsProtocol=https;AccountName=acct",
        str(rng.randrange(999)),
        ";Account",
        "Key=",
        key,
        ";EndpointSuffix=core.windows.net",
    )
    return Secret("account_key", text, key[:-2])


def _azure_sas(rng: random.Random) -> Secret:
    sig = _p(rng, _AN, 43) + "%3D"
    text = _j(
        "https://acct.blob.core.windows.net/box/file.txt?sp=r&st=2025-01-01T00:00:00Z",
        "&se=2025-01-02T00:00:00Z&spr=https&sv=2022-11-02&sr=b&s",
        "ig=",
        sig,
    )
    return Secret("azure_sas_signature", text, sig)


def _azure_secret(rng: random.Random) -> Secret:
    head = _p(rng, _AN, 3) + str(rng.randrange(10))
    body = _p(rng, _AN + "_~.-", 34)
    return Secret("azure_client_secret", _j(head, "Q", "~", body), body)


def _twilio(rng: random.Random) -> Secret:
    body = _p(rng, _HEX, 32)
    return Secret("twilio_key", _j("S", "K", body), body)


def _sendgrid(rng: random.Random) -> Secret:
    body = _p(rng, _B64URL, 22) + "." + _p(rng, _B64URL, 43)
    return Secret("sendgrid_key", _j("S", "G.", body), body)


def _pypi(rng: random.Random) -> Secret:
    body = _p(rng, _B64URL, 150)
    return Secret("pypi_token", _j("pypi", "-AgEIcHlwaS5vcmc", body), body)


def _discord_bot(rng: random.Random) -> Secret:
    hmac = _p(rng, _B64URL, 38)
    text = _j(rng.choice("MNO"), _p(rng, _B64URL, 25), ".", _p(rng, _B64URL, 6), ".", hmac)
    return Secret("discord_bot_token", text, hmac)


def _discord_webhook(rng: random.Random) -> Secret:
    token = _p(rng, _B64URL, 68)
    text = _j("https://discord", ".com/api/webhooks/", _p(rng, "0123456789", 19), "/", token)
    return Secret("discord_webhook", text, token)


def _telegram(rng: random.Random) -> Secret:
    body = "AA" + _p(rng, _B64URL, 33)
    return Secret("telegram_bot_token", _j(_p(rng, "123456789", 10), ":", body), body)


def _slack_webhook(rng: random.Random) -> Secret:
    path = _j("T", _p(rng, _UP, 10), "/B", _p(rng, _UP, 10), "/", _p(rng, _AN, 24))
    return Secret("slack_webhook", _j("https://hooks", ".slack.com/services/", path), path)


def _slack_bot(rng: random.Random) -> Secret:
    body = _j(_p(rng, "0123456789", 12), "-", _p(rng, "0123456789", 13), "-", _p(rng, _AN, 24))
    return Secret("slack_token", _j("xo", "xb-", body), body)


def _teams_webhook(rng: random.Random) -> Secret:
    body = _j(_p(rng, _HEX, 8), "-", _p(rng, _HEX, 4), "@", _p(rng, _HEX, 8), "/IncomingWebhook/")
    body += _p(rng, _HEX, 32)
    text = _j("https://acme.webhook", ".office.com/webhookb2/", body)
    return Secret("teams_webhook", text, body)


def _mailchimp(rng: random.Random) -> Secret:
    body = _p(rng, _HEX, 32)
    return Secret("mailchimp_key", _j(body, "-us", str(rng.randrange(1, 21))), body)


def _mailgun_signing(rng: random.Random) -> Secret:
    body = _j(_p(rng, _HEX, 32), "-", _p(rng, _HEX, 8), "-", _p(rng, _HEX, 8))
    return Secret("mailgun_key", body, body)


def _doppler(rng: random.Random) -> Secret:
    body = _p(rng, _AN, 43)
    return Secret("doppler_token", _j("dp", ".", rng.choice(("pt", "st", "sa")), ".", body), body)


def _jwt(rng: random.Random) -> Secret:
    def seg(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    payload = seg(b'{"sub":"' + rng.randbytes(12).hex().encode() + b'"}')
    signature = seg(rng.randbytes(32))
    text = _j(seg(b'{"alg":"HS256"}'), ".", payload, ".", signature)
    return Secret("jwt", text, f"{payload}.{signature}")


def _sentry_dsn(rng: random.Random) -> Secret:
    key = _p(rng, _HEX, 32)
    text = _j("https://", key, "@o", str(rng.randrange(10**6)), ".ingest.sentry.io/", "42")
    return Secret("sentry_dsn", text, key)


def _pem(rng: random.Random) -> Secret:
    lines = [_p(rng, _B64, 64) for _ in range(6)]
    dashes = "-" * 5
    text = _j(dashes, "BEGIN RSA PRIVATE KEY", dashes, "\n", "\n".join(lines), "\n", dashes)
    text += _j("END RSA PRIVATE KEY", dashes)
    return Secret("private_key", text, lines[0])


def _url_password(rng: random.Random) -> Secret:
    password = _p(rng, _AN, 16)
    scheme = rng.choice(("postgresql", "redis", "mongodb+srv", "amqp", "https"))
    return Secret("url_password", f"{scheme}://app:{password}@db.internal:5432/main", password)


def _age(rng: random.Random) -> Secret:
    body = _p(rng, _BECH32, 58)
    return Secret("age_secret_key", _j("AGE", "-SECRET-KEY-1", body), body)


def _aws_id(rng: random.Random) -> Secret:
    body = _p(rng, _UP, 16)
    return Secret("aws_access_key_id", _j(rng.choice(("AK", "AS")), "IA", body), body)


def _pinecone(rng: random.Random) -> Secret:
    body = _j(_p(rng, _AN, 6), "_", _p(rng, _AN, 63))
    return Secret("pinecone_key", _j("pc", "sk_", body), body)


def _langsmith(rng: random.Random) -> Secret:
    body = _j(_p(rng, _HEX, 32), "_", _p(rng, _HEX, 10))
    return Secret("langsmith_key", _j("lsv2", "_pt_", body), body)


def _bearer(rng: random.Random) -> Secret:
    token = _p(rng, _AN + "._-", 40)
    return Secret("bearer_token", "Bearer " + token, token)


def _anthropic(rng: random.Random) -> Secret:
    body = _p(rng, _B64URL, 93) + "AA"
    return Secret("anthropic_key", _j("sk", "-ant-", "api03-", body), body)


def _openai(rng: random.Random) -> Secret:
    body = _p(rng, _B64URL, 156)
    return Secret("openai_key", _j("sk", "-proj-", body), body)


def _dynatrace(rng: random.Random) -> Secret:
    body = _j(_p(rng, _UP, 24), ".", _p(rng, _UP, 64))
    return Secret("dynatrace_token", _j("dt0c01", ".", body), body)


def _grafana(rng: random.Random) -> Secret:
    body = _j(_p(rng, _AN, 32), "_", _p(rng, _HEX, 8))
    return Secret("grafana_token", _j("gl", "sa_", body), body)


def _postman(rng: random.Random) -> Secret:
    body = _j(_p(rng, _HEX, 24), "-", _p(rng, _HEX, 34))
    return Secret("postman_key", _j("PM", "AK-", body), body)


#: Every format the probe plants, by name.
FORMATS: dict[str, Callable[[random.Random], Secret]] = {
    "github_pat": _prefixed("github_token", _j("gh", "p_"), _AN, 36),
    "github_oauth": _prefixed("github_token", _j("gh", "o_"), _AN, 36),
    "github_app": _prefixed("github_token", _j("gh", "s_"), _AN, 36),
    "github_fine_grained_pat": _github_fine,
    "gitlab_pat": _gitlab("pat"),
    "gitlab_runner": _gitlab("rt"),
    "gitlab_deploy": _gitlab("dt"),
    "slack_bot": _slack_bot,
    "slack_webhook": _slack_webhook,
    "stripe_secret": _stripe("s"),
    "stripe_restricted": _stripe("r"),
    "stripe_webhook": _prefixed("stripe_webhook_secret", _j("wh", "sec_"), _AN, 32),
    "aws_access_key_id": _aws_id,
    "aws_secret_access_key": _aws_secret,
    "aws_session_token": _aws_session,
    "gcp_api_key": _prefixed("google_api_key", _j("AI", "za"), _B64URL, 35),
    "gcp_oauth_client_secret": _prefixed("gcp_oauth_client_secret", _j("GOC", "SPX-"), _B64URL, 28),
    "google_oauth_token": _prefixed("google_oauth_token", _j("ya", "29."), _B64URL, 120),
    "azure_storage_connection_string": _azure_conn,
    "azure_sas_url": _azure_sas,
    "azure_client_secret": _azure_secret,
    "twilio_api_key": _twilio,
    "sendgrid": _sendgrid,
    "npm": _prefixed("npm_token", _j("np", "m_"), _AN, 36),
    "pypi": _pypi,
    "huggingface": _prefixed("huggingface_token", _j("h", "f_"), string.ascii_letters, 34),
    "huggingface_org": _prefixed("huggingface_token", _j("api", "_org_"), _AN, 34),
    "discord_bot": _discord_bot,
    "discord_webhook": _discord_webhook,
    "telegram_bot": _telegram,
    "shopify_access": _prefixed("shopify_token", _j("shp", "at_"), _HEX, 32),
    "shopify_shared_secret": _prefixed("shopify_token", _j("shp", "ss_"), _HEX, 32),
    "digitalocean_pat": _prefixed("digitalocean_token", _j("do", "p_v1_"), _HEX, 64),
    "digitalocean_oauth": _prefixed("digitalocean_token", _j("do", "o_v1_"), _HEX, 64),
    "mailgun_key": _prefixed("mailgun_key", _j("ke", "y-"), _HEX, 32),
    "mailgun_signing_key": _mailgun_signing,
    "mailchimp": _mailchimp,
    "square_access": _prefixed("square_token", _j("EA", "AA"), _B64URL, 60),
    "square_oauth_secret": _prefixed("square_token", _j("sq0", "csp-"), _B64URL, 43),
    "databricks": _prefixed("databricks_token", _j("da", "pi"), _HEX, 32),
    "doppler": _doppler,
    "vault_service": _prefixed("vault_token", _j("hv", "s."), _B64URL, 95),
    "vault_batch": _prefixed("vault_token", _j("hv", "b."), _B64URL, 140),
    "age": _age,
    "groq": _prefixed("groq_key", _j("gs", "k_"), _AN, 52),
    "replicate": _prefixed("replicate_token", _j("r", "8_"), _B64URL, 37),
    "linear": _prefixed("linear_key", _j("lin", "_api_"), _AN, 40),
    "notion": _prefixed("notion_token", _j("nt", "n_"), _AN, 46),
    "notion_legacy": _prefixed("notion_token", _j("sec", "ret_"), _AN, 43),
    "sentry_dsn": _sentry_dsn,
    "sentry_user_token": _prefixed("sentry_token", _j("sntr", "yu_"), _HEX, 64),
    "openai_project": _openai,
    "anthropic": _anthropic,
    "openrouter": _prefixed("openrouter_key", _j("sk", "-or-v1-"), _HEX, 64),
    "xai": _prefixed("xai_key", _j("xa", "i-"), _AN, 80),
    "perplexity": _prefixed("perplexity_key", _j("pp", "lx-"), _AN, 48),
    "pinecone": _pinecone,
    "langsmith": _langsmith,
    "supabase": _prefixed("supabase_token", _j("sb", "p_"), _HEX, 40),
    "postman": _postman,
    "heroku": _prefixed("heroku_key", _j("HR", "KU-AA"), _B64URL, 58),
    "grafana_service_account": _grafana,
    "prefect": _prefixed("prefect_key", _j("pn", "u_"), _AN, 36),
    "rubygems": _prefixed("rubygems_key", _j("ruby", "gems_"), _HEX, 48),
    "planetscale": _prefixed("planetscale_token", _j("psc", "ale_tkn_"), _AN, 43),
    "clojars": _prefixed("clojars_token", _j("CLO", "JARS_"), _LOW, 60),
    "new_relic": _prefixed("new_relic_key", _j("NR", "AK-"), _UP, 27),
    "alibaba": _prefixed("alibaba_key", _j("LT", "AI"), _AN, 20),
    "dynatrace": _dynatrace,
    "jwt": _jwt,
    "private_key_pem": _pem,
    "url_with_password": _url_password,
    "bearer": _bearer,
    "teams_webhook": _teams_webhook,
}


def make_format(name: str, rng: random.Random) -> Secret:
    """One fake secret of the format *name* (a key of `FORMATS`) drawn from *rng*."""
    return FORMATS[name](rng)


# -- benign texts: redaction must leave every one unchanged -------------------

_PROSE = (
    *("the", "key", "point", "token", "budget", "author", "keyboard", "passage", "of"),
    *("secret", "sauce", "password", "reset", "link", "a", "monkey", "turkey", "basic"),
    *("bearer", "news", "authorization", "flow", "cookie", "banner", "keynote", "api"),
    *("tokens", "counted", "session", "stage", "output", "pass", "the", "tests", "model"),
)


def _prose(rng: random.Random) -> str:
    words = [rng.choice(_PROSE) for _ in range(rng.randrange(6, 40))]
    return " ".join(words).capitalize() + rng.choice((".", "!", "?", ";", " -- done."))


def _hashes(rng: random.Random) -> str:
    return rng.choice(
        (
            f"md5 {rng.randbytes(16).hex()}",
            f"sha1:{rng.randbytes(20).hex()}",
            f"sha256={rng.randbytes(32).hex()}",
            f"sha512 {rng.randbytes(64).hex()}",
            f"commit {rng.randbytes(20).hex()} (HEAD -> main) short {rng.randbytes(4).hex()[:7]}",
            f'etag W/"{rng.randbytes(16).hex()}"',
        )
    )


def _uuid(rng: random.Random) -> str:
    h = rng.randbytes(16).hex()
    upper = rng.random() < 0.3
    text = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return f"request_id={text.upper() if upper else text} retried"


def _base64(rng: random.Random) -> str:
    raw = rng.randbytes(rng.randrange(8, 400))
    encode = rng.choice((base64.b64encode, base64.urlsafe_b64encode))
    blob = encode(raw).decode()
    return rng.choice((blob, f"data:application/octet-stream;base64,{blob}", f"payload {blob}"))


def _path(rng: random.Random) -> str:
    parts = ["keys", "tokens", "secrets", "01_raw", "authors", "passwords", "keyboard", "out"]
    chosen = [rng.choice(parts) for _ in range(rng.randrange(2, 6))]
    name = rng.choice(("api_key_rotation.md", "token_counts.csv", "secret_santa.txt", "x.json"))
    return (
        rng.choice(("/home/user/", "C:\\work\\", "./", "s3://bucket/"))
        + "/".join(chosen)
        + "/"
        + name
    )


def _url(rng: random.Random) -> str:
    host = rng.choice(
        ("example.com", "api.openai.com", "localhost:8080", "10.0.0.1:443", "[::1]:80")
    )
    path = "/".join(
        rng.choice(("v1", "keys", "tokens", "auth", "items", "users")) for _ in range(3)
    )
    query = f"page={rng.randrange(9)}&token_count={rng.randrange(999)}&q=a@b#frag"
    return f"{rng.choice(('https', 'http', 'ftp'))}://{host}/{path}?{query}"


def _code(rng: random.Random) -> str:
    return rng.choice(
        (
            f"max_tokens={rng.randrange(4000)} input_tokens: {rng.randrange(999)}",
            "def get_secret_name(key_id: str) -> str:  # returns the name, not the secret",
            f"tokenizer.encode(text)[:{rng.randrange(512)}] # keyboard_layout = 'us'",
            "Request options: {'api_key': None, 'json_data': {'max_tokens': 100}}",
            '{"password": null, "token": false, "usage": {"total_tokens": 12}}',
            f"2025-01-18T17:30:{rng.randrange(60):02d}.123Z INFO parsed in {rng.randrange(99)} ms",
            f"version 1.{rng.randrange(99)}.{rng.randrange(99)}-rc.{rng.randrange(9)}+build.5",
            # Joined at run time: the text is benign, but reads like a key to a grep.
            "the task-0123456789" + "abcdefghijk finished; see author@example.org",
            "opentelemetry_instrumentation_x.module.a_very_long_attribute_name_here",
            "self.hf_model_name_or_path_for_the_tokenizer = secret_manager_client_name",
        )
    )


_BENIGN = (_prose, _hashes, _uuid, _base64, _path, _url, _code)


def make_benign_corpus(n: int, seed: int = 0) -> list[str]:
    """*n* texts without secrets: prose, hashes, UUIDs, base64, paths, URLs, code."""
    rng = random.Random(seed)  # noqa: S311 - seeded test data, nothing cryptographic
    return [_BENIGN[i % len(_BENIGN)](rng) for i in range(n)]
