"""The secret formats `SecretRedactor` recognises by shape: one rule per format.

The key names, the ``name=value`` rules and the code that joins this table
into one regex are in `core.secret_rules`; a new format is one more rule here.

The formats (prefixes, alphabets, lengths) are facts published by the
vendors and collected by public secret scanners (gitleaks' default rule set,
trufflehog's detectors); the patterns here are written for this engine.

A rule is data: ``lead`` + ``anchor`` + ``tail``. `core.secret_rules` joins
every rule into one regex that opens with a character class made of the anchors
(characters rare in prose: ``-``, ``_``, ``.``, ``~``, ``:``, ``=``, a few
capitals), so the regex engine only stops at those characters; there a rule
checks its ``tail`` forwards and its ``lead`` backwards (a fixed-width
lookbehind). Keep anchors rare: every occurrence of an anchor in a text
costs a few lookbehinds.

What is replaced: the whole match, lead included (``secret=False``), or
only the span of the tail's ``(?P<secret>…)`` group, keeping the context
around it (``Bearer``, a URL's user and host, ``&sig=``).
"""

from __future__ import annotations

# The width of a lead as the regex engine sees it; typeshed has no stub for it.
import re._parser as _re_parser  # type: ignore[import-not-found]
from dataclasses import dataclass
from typing import Final

__all__ = ["BACK", "RULES", "SecretRule"]


@dataclass(frozen=True, slots=True)
class SecretRule:
    """One secret format: where its regex anchors and what it replaces.

    Attributes:
        kind: The marker's kind (``[REDACTED:<kind>]``); several formats may share one.
        name: The format, as the docs list it.
        lead: Fixed-width regex of the secret's part before *anchor*.
        anchor: One character the combined regex stops at.
        tail: Regex of the part after *anchor*.
        secret: Replace only the tail's ``(?P<secret>…)`` group (keep the context).
        word_start: The lead must start a word (no letter or digit before it).
    """

    kind: str
    name: str
    lead: str
    anchor: str
    tail: str
    secret: bool = False
    word_start: bool = True


_B64URL: Final = "[A-Za-z0-9_-]"
_HEX: Final = "[a-f0-9]"
_AN: Final = "[A-Za-z0-9]"
_END: Final = "(?![A-Za-z0-9])"


def _r(
    kind: str,
    name: str,
    lead: str,
    anchor: str,
    tail: str,
    *,
    secret: bool = False,
    word_start: bool = True,
) -> SecretRule:
    return SecretRule(kind, name, lead, anchor, tail, secret, word_start)


#: Every shape rule, in the order the combined regex tries them at one anchor.
RULES: Final[tuple[SecretRule, ...]] = (
    # -- "-" ----------------------------------------------------------------
    # PEM private key blocks, also cut short (no END line).
    _r(
        "private_key",
        "PEM private key block (RSA, EC, DSA, OpenSSH, PGP, encrypted)",
        "",
        "-",
        r"----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]*?-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|[A-Za-z0-9+/=\s\\]*)",
        word_start=False,
    ),
    _r(
        "anthropic_key",
        "Anthropic API and admin keys (sk-ant-…)",
        "sk",
        "-",
        rf"ant-[a-z]+[0-9]*-{_B64URL}{{20,}}",
    ),
    _r("openrouter_key", "OpenRouter keys (sk-or-v1-…)", "sk", "-", rf"or-v[0-9]+-{_HEX}{{32,}}"),
    _r("langfuse_key", "Langfuse secret keys (sk-lf-…)", "sk", "-", r"lf-[0-9a-f-]{32,}"),
    _r(
        "openai_key",
        "OpenAI project, service-account, admin and legacy keys; DeepSeek and other sk- keys",
        "sk",
        "-",
        rf"(?:proj|svcacct|admin|service|None)-{_B64URL}{{20,}}|{_AN}{{20,}}",
    ),
    _r(
        "gitlab_token",
        "GitLab personal, project, pipeline, CI job, mail, OAuth tokens",
        "gl(?:pat|ptt|imt|cbt|oas)",
        "-",
        r"[A-Za-z0-9_.=-]{20,}",
    ),
    _r(
        "gitlab_token",
        "GitLab runner, deploy, feed tokens (glrt-, gldt-, glft-)",
        "gl(?:rt|dt|ft)",
        "-",
        r"[A-Za-z0-9_.=-]{20,}",
    ),
    _r(
        "gitlab_token",
        "GitLab SCIM and feature-flag tokens (glsoat-, glffct-)",
        "gl(?:soat|ffct)",
        "-",
        r"[A-Za-z0-9_.=-]{20,}",
    ),
    _r("gitlab_token", "GitLab agent tokens (glagent-)", "glagent", "-", r"[A-Za-z0-9_.=-]{20,}"),
    _r(
        "gcp_oauth_client_secret",
        "Google OAuth client secrets (GOCSPX-)",
        "GOCSPX",
        "-",
        rf"{_B64URL}{{20,}}",
    ),
    _r("pypi_token", "PyPI upload tokens (pypi-AgE…)", "pypi", "-", rf"AgE{_B64URL}{{40,}}"),
    _r(
        "age_secret_key",
        "age encryption secret keys (AGE-SECRET-KEY-1…)",
        "AGE",
        "-",
        r"SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{50,}",
    ),
    _r("xai_key", "xAI keys (xai-)", "xai", "-", r"[A-Za-z0-9_]{60,}"),
    _r("perplexity_key", "Perplexity keys (pplx-)", "pplx", "-", rf"{_AN}{{40,}}"),
    _r("postman_key", "Postman API keys (PMAK-)", "PMAK", "-", r"[a-fA-F0-9]{24}-[a-fA-F0-9]{34}"),
    _r("heroku_key", "Heroku API keys v2 (HRKU-AA)", "HRKU", "-", rf"AA{_B64URL}{{50,}}"),
    _r(
        "square_token",
        "Square access tokens and OAuth secrets (sq0atp-, sq0csp-, …)",
        "sq0[a-z]{3}",
        "-",
        rf"{_B64URL}{{22,}}",
    ),
    _r("mailgun_key", "Mailgun private API keys (key-…)", "key", "-", rf"[a-z0-9]{{32}}{_END}"),
    _r(
        "mailgun_key",
        "Mailgun webhook signing keys (hex-hex-hex)",
        f"{_HEX}{{32}}",
        "-",
        rf"{_HEX}{{8}}-{_HEX}{{8}}{_END}",
    ),
    _r(
        "mailchimp_key",
        "Mailchimp API keys (hex-usNN)",
        f"{_HEX}{{32}}",
        "-",
        rf"us[0-9]{{1,2}}{_END}",
    ),
    _r("infracost_key", "Infracost API keys (ico-)", "ico", "-", rf"{_AN}{{32}}"),
    _r("pulumi_token", "Pulumi access tokens (pul-)", "pul", "-", rf"{_HEX}{{40}}"),
    _r("adobe_client_secret", "Adobe client secrets (p8e-)", "p8e", "-", rf"{_AN}{{32}}"),
    _r(
        "sendinblue_key",
        "Brevo (Sendinblue) API keys (xkeysib-)",
        "xkeysib",
        "-",
        rf"{_HEX}{{64}}-{_AN}{{16}}",
    ),
    _r(
        "new_relic_key",
        "New Relic user, insert and browser keys (NRAK-, NRII-, NRJS-)",
        "NR(?:AK|II|JS)",
        "-",
        r"[A-Za-z0-9-]{19,}",
    ),
    _r("octopus_key", "Octopus Deploy API keys (API-)", "API", "-", rf"[A-Z0-9]{{26}}{_END}"),
    _r("slack_token", "Slack app-level tokens (xapp-)", "xapp", "-", r"[0-9]-[A-Za-z0-9-]{20,}"),
    _r("frameio_token", "Frame.io tokens (fio-u-)", "fio", "-", r"u-[A-Za-z0-9_=-]{40,}"),
    _r(
        "onepassword_secret_key",
        "1Password account secret keys (A3-)",
        "A3",
        "-",
        r"[A-Z0-9]{6}-[A-Z0-9-]{25,}",
    ),
    _r("scalingo_token", "Scalingo API tokens (tk-us-)", "tk", "-", rf"us-{_B64URL}{{40,}}"),
    _r(
        "cloudflare_origin_ca_key",
        "Cloudflare Origin CA keys (v1.0-)",
        r"v1\.0",
        "-",
        rf"{_HEX}{{24}}-{_HEX}{{100,}}",
    ),
    # -- "_" ----------------------------------------------------------------
    _r(
        "github_token",
        "GitHub personal, OAuth, app and refresh tokens (ghp_, gho_, …)",
        "gh[pousr]",
        "_",
        rf"{_AN}{{36,}}",
    ),
    _r(
        "github_token",
        "GitHub fine-grained personal access tokens (github_pat_)",
        "github_pat",
        "_",
        r"[A-Za-z0-9_]{40,}",
    ),
    _r("huggingface_token", "Hugging Face access tokens (hf_)", "hf", "_", rf"{_AN}{{30,}}"),
    _r(
        "huggingface_token",
        "Hugging Face organisation tokens (api_org_)",
        "api_org",
        "_",
        rf"{_AN}{{30,}}",
    ),
    _r("npm_token", "npm access tokens (npm_)", "npm", "_", rf"{_AN}{{36,}}"),
    _r("groq_key", "Groq API keys (gsk_)", "gsk", "_", rf"{_AN}{{40,}}"),
    _r("replicate_token", "Replicate API tokens (r8_)", "r8", "_", rf"{_B64URL}{{30,}}"),
    _r("linear_key", "Linear API keys (lin_api_)", "lin_api", "_", rf"{_AN}{{32,}}"),
    _r(
        "digitalocean_token",
        "DigitalOcean personal, OAuth and refresh tokens (dop_v1_, …)",
        "do[por]_v1",
        "_",
        rf"{_HEX}{{64}}",
    ),
    _r(
        "shopify_token",
        "Shopify access tokens and shared secrets (shpat_, shpss_, …)",
        "shp(?:at|ca|pa|ss)",
        "_",
        r"[a-fA-F0-9]{32}",
    ),
    _r(
        "stripe_key",
        "Stripe secret and restricted keys (sk_live_, rk_live_, …_test_)",
        "[rs]k_(?:live|test|prod)",
        "_",
        rf"{_AN}{{16,}}",
    ),
    _r(
        "stripe_webhook_secret",
        "Stripe webhook signing secrets (whsec_)",
        "whsec",
        "_",
        r"[A-Za-z0-9+/=]{24,}",
    ),
    _r(
        "sentry_token",
        "Sentry user and organisation auth tokens (sntryu_, sntrys_)",
        "sntry[us]",
        "_",
        r"[A-Za-z0-9+/=_]{40,}",
    ),
    _r("supabase_token", "Supabase access tokens (sbp_)", "sbp", "_", rf"{_HEX}{{40}}"),
    _r("pinecone_key", "Pinecone API keys (pcsk_)", "pcsk", "_", rf"{_AN}{{4,8}}_{_AN}{{40,}}"),
    _r(
        "langsmith_key",
        "LangSmith personal and service keys (lsv2_pt_, lsv2_sk_)",
        "lsv2_(?:pt|sk)",
        "_",
        rf"{_HEX}{{32}}_{_HEX}{{8,}}",
    ),
    _r("notion_token", "Notion integration tokens (ntn_)", "ntn", "_", rf"{_AN}{{40,}}"),
    _r(
        "notion_token",
        "Notion legacy integration secrets (secret_ + 43)",
        "secret",
        "_",
        rf"{_AN}{{43}}{_END}",
    ),
    _r("prefect_key", "Prefect API keys (pnu_)", "pnu", "_", rf"{_AN}{{36}}"),
    _r(
        "grafana_token",
        "Grafana service-account tokens (glsa_)",
        "glsa",
        "_",
        rf"{_AN}{{32}}_[A-Fa-f0-9]{{8}}",
    ),
    _r("grafana_token", "Grafana Cloud API tokens (glc_)", "glc", "_", r"[A-Za-z0-9+/]{32,}={0,3}"),
    _r("rubygems_key", "RubyGems API keys (rubygems_)", "rubygems", "_", rf"{_HEX}{{48}}"),
    _r(
        "planetscale_token",
        "PlanetScale tokens and passwords (pscale_tkn_, pscale_pw_, …)",
        "pscale",
        "_",
        r"(?:tkn|pw|oauth)_[A-Za-z0-9_=.-]{32,}",
    ),
    _r("clojars_token", "Clojars deploy tokens (CLOJARS_)", "CLOJARS", "_", rf"{_AN}{{60}}"),
    _r(
        "onepassword_token",
        "1Password service-account tokens (ops_eyJ)",
        "ops",
        "_",
        r"eyJ[A-Za-z0-9+/]{100,}={0,3}",
    ),
    _r("elevenlabs_key", "ElevenLabs API keys (sk_ + 48 hex)", "sk", "_", rf"{_HEX}{{48}}{_END}"),
    _r("readme_key", "ReadMe API keys (rdme_)", "rdme", "_", r"[a-z0-9]{70}"),
    _r(
        "duffel_token",
        "Duffel API tokens (duffel_live_, duffel_test_)",
        "duffel_(?:live|test)",
        "_",
        r"[A-Za-z0-9_=-]{40,}",
    ),
    _r(
        "shippo_token",
        "Shippo API tokens (shippo_live_, shippo_test_)",
        "shippo_(?:live|test)",
        "_",
        r"[a-fA-F0-9]{40}",
    ),
    # -- "." ----------------------------------------------------------------
    _r(
        "sendgrid_key", "SendGrid API keys (SG.)", "SG", ".", rf"{_B64URL}{{16,}}\.{_B64URL}{{30,}}"
    ),
    _r(
        "doppler_token",
        "Doppler personal, service, CLI, service-account tokens (dp.pt., dp.st., …)",
        r"dp\.(?:pt|st|ct|sa)",
        ".",
        r"[A-Za-z0-9]{40,}",
    ),
    _r("doppler_token", "Doppler SCIM tokens (dp.scim.)", r"dp\.scim", ".", r"[A-Za-z0-9]{40,}"),
    _r("doppler_token", "Doppler audit tokens (dp.audit.)", r"dp\.audit", ".", r"[A-Za-z0-9]{40,}"),
    _r(
        "vault_token",
        "HashiCorp Vault service, batch and recovery tokens (hvs., hvb., hvr.)",
        "hv[sbr]",
        ".",
        rf"{_B64URL}{{24,}}",
    ),
    _r(
        "google_oauth_token",
        "Google OAuth access tokens (ya29.)",
        "ya29",
        ".",
        rf"{_B64URL}{{20,}}",
    ),
    _r(
        "slack_webhook",
        "Slack incoming webhooks and workflow triggers (hooks.slack.com/…)",
        "hooks",
        ".",
        r"slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_-]{20,}",
    ),
    _r(
        "discord_webhook",
        "Discord webhooks (discord.com/api/webhooks/…)",
        "discord",
        ".",
        r"com/api/webhooks/[0-9]+/[A-Za-z0-9_-]{40,}",
    ),
    _r(
        "discord_webhook",
        "Discord webhooks (discordapp.com/api/webhooks/…)",
        "discordapp",
        ".",
        r"com/api/webhooks/[0-9]+/[A-Za-z0-9_-]{40,}",
    ),
    _r(
        "teams_webhook",
        "Microsoft Teams incoming webhooks (webhook.office.com/webhookb2/…)",
        "webhook",
        ".",
        r"office\.com/webhookb2/[^\s\"'<>]{20,}",
    ),
    _r(
        "discord_bot_token",
        "Discord bot tokens (id.timestamp.hmac)",
        rf"{_B64URL}{{23}}\.{_B64URL}{{6}}",
        ".",
        # Random, so both cases: a dotted name (module.attr.long_name) is not a token.
        rf"(?=[A-Za-z0-9_-]*[A-Z])(?=[A-Za-z0-9_-]*[a-z]){_B64URL}{{27,38}}(?![A-Za-z0-9_-])",
        word_start=False,
    ),
    _r(
        "mapbox_token",
        "Mapbox secret tokens (sk.eyJ)",
        "sk",
        ".",
        rf"eyJ{_B64URL}{{20,}}\.{_B64URL}{{20,}}",
    ),
    _r(
        "dynatrace_token",
        "Dynatrace API tokens (dt0c01.)",
        "dt0c01",
        ".",
        rf"{_AN}{{24}}\.{_AN}{{64}}",
    ),
    _r(
        "terraform_token",
        "Terraform Cloud / HCP API tokens (….atlasv1.…)",
        f"{_AN}{{14}}",
        ".",
        r"atlasv1\.[A-Za-z0-9_=-]{60,}",
    ),
    _r(
        "databricks_token",
        "Databricks personal access tokens (dapi + 32 hex)",
        "da",
        "p",
        rf"i{_HEX}{{32}}(?:-[0-9])?{_END}",
    ),
    # -- "J", "Z": base64 of JSON or of a known binary header ---------------
    _r(
        "jwt",
        "JSON Web Tokens (eyJ….eyJ….…)",
        "ey",
        "J",
        rf"{_B64URL}{{2,}}\.eyJ{_B64URL}{{2,}}\.{_B64URL}*",
    ),
    _r("grafana_token", "Grafana API keys (eyJrIjoi)", "ey", "J", r"rIjoi[A-Za-z0-9]{50,}={0,3}"),
    _r(
        "aws_session_token",
        "AWS session tokens (IQoJb3JpZ2luX2Vj…)",
        "IQo",
        "J",
        r"b3JpZ2luX2Vj[A-Za-z0-9+/=]{40,}",
    ),
    _r(
        "aws_session_token",
        "AWS session tokens (FwoGZXIvYXdz…)",
        "FwoG",
        "Z",
        r"XIvYXdz[A-Za-z0-9+/=]{40,}",
    ),
    # -- capitals -----------------------------------------------------------
    _r(
        "aws_access_key_id",
        "AWS access key ids (AKIA, ASIA, ABIA, ACCA, A3T)",
        "",
        "A",
        rf"(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z0-9]{{16}}{_END}",
    ),
    _r("google_api_key", "Google API keys (AIza)", "", "A", rf"Iza{_B64URL}{{35}}"),
    _r("artifactory_key", "JFrog Artifactory API keys (AKCp)", "", "A", rf"KCp{_AN}{{60,}}"),
    _r("atlassian_token", "Atlassian API tokens (ATATT3)", "", "A", r"TATT3[A-Za-z0-9_=-]{100,}"),
    _r(
        "aws_bedrock_key",
        "Amazon Bedrock API keys (ABSK)",
        "",
        "A",
        r"BSK[A-Za-z0-9+/]{100,}={0,2}",
    ),
    _r("twilio_key", "Twilio API keys (SK + 32 hex)", "S", "K", rf"[0-9a-fA-F]{{32}}{_END}"),
    _r("square_token", "Square access tokens (EAAA)", "", "E", r"AAA[A-Za-z0-9_+=-]{60,}"),
    _r(
        "facebook_token",
        "Facebook page access tokens (EAAC, EAAM)",
        "",
        "E",
        rf"AA[CM]{_AN}{{100,}}",
    ),
    _r("easypost_key", "EasyPost API keys (EZAK, EZTK)", "", "E", rf"Z[AT]K{_AN}{{54}}"),
    _r("alibaba_key", "Alibaba Cloud access key ids (LTAI)", "", "L", rf"TAI{_AN}{{20}}{_END}"),
    _r(
        "gitlab_token",
        "GitLab runner registration tokens (GR1348941)",
        "",
        "G",
        rf"R1348941{_B64URL}{{20,}}",
    ),
    # -- "B": Authorization schemes, capitalised as RFC 7235 writes them ------
    # ("authorization: bearer …" in any case is the header name rule's).
    _r(
        "bearer_token",
        "Bearer tokens (Bearer …)",
        "",
        "B",
        r"earer[ \t]+(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)",
        secret=True,
    ),
    _r(
        "basic_auth",
        "Basic credentials (Basic base64(user:password))",
        "",
        "B",
        r"asic[ \t]+(?P<secret>[A-Za-z0-9+/]{4,}={0,2})",
        secret=True,
    ),
    # -- "x" ----------------------------------------------------------------
    _r(
        "slack_token",
        "Slack bot, user, workspace, config tokens (xoxb-, xoxp-, xoxe-, …)",
        "",
        "x",
        r"ox[abposre][.-][A-Za-z0-9.-]{10,}",
    ),
    # -- "~" ----------------------------------------------------------------
    _r(
        "azure_client_secret",
        "Azure AD / Entra client secrets (…Q~…)",
        r"[A-Za-z0-9_~.]{3}[0-9]Q",
        "~",
        r"[A-Za-z0-9_~.-]{31,34}",
    ),
    # -- ":" ----------------------------------------------------------------
    _r(
        "telegram_bot_token",
        "Telegram bot tokens (digits:AA…)",
        "[0-9]{5}",
        ":",
        rf"A{_B64URL}{{33,}}",
        word_start=False,
    ),
    # scheme://user:password@host keeps scheme, user and host.
    _r(
        "url_password",
        "Passwords in URLs (scheme://user:password@host)",
        "",
        ":",
        "//[^\\s:/?#@\\[\\]\"'<>]*:(?P<secret>[^\\s/?#\"'<>]+)(?=@)",
        secret=True,
        word_start=False,
    ),
    _r(
        "sentry_dsn",
        "Sentry DSN keys (https://<32 hex>@…sentry.io)",
        "",
        ":",
        rf"//(?P<secret>{_HEX}{{32}})(?::{_HEX}{{32}})?(?=@)",
        secret=True,
        word_start=False,
    ),
    # -- "=" ----------------------------------------------------------------
    # Azure connection strings spell their key names this way (AccountKey=…;).
    _r(
        "account_key",
        "Azure storage account keys in connection strings (AccountKey=)",
        "AccountKey",
        "=",
        r"(?P<secret>[A-Za-z0-9+/]{20,}={0,2})",
        secret=True,
        word_start=False,
    ),
    _r(
        "shared_access_key",
        "Azure Service Bus / Event Hubs shared access keys (SharedAccessKey=)",
        "SharedAccessKey",
        "=",
        r"(?P<secret>[A-Za-z0-9+/]{20,}={0,2})",
        secret=True,
        word_start=False,
    ),
    _r(
        "azure_sas_signature",
        "Azure SAS signatures in URLs and connection strings (sig=)",
        "[?&;]sig",
        "=",
        r"(?P<secret>[A-Za-z0-9%+/=]{16,})",
        secret=True,
        word_start=False,
    ),
)


def _width(lead: str) -> int:
    low, high = _re_parser.parse(lead).getwidth()
    if low != high:  # pragma: no cover - checked for every rule at import
        msg = f"the lead of a secret rule must have a fixed width, got {lead!r}"
        raise ValueError(msg)
    return int(low)


#: How many characters of each rule's secret stand before its anchor.
BACK: Final[tuple[int, ...]] = tuple(_width(rule.lead) for rule in RULES)
