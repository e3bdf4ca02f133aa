"""Which SDK sent a request, from what it says about itself in its headers.

Eras of the official SDKs (see shared/reference/anthropic-versions.md):
- Python 0.2.x sends `Anthropic-SDK: anthropic-python/0.2.10` (its user agent is the HTTP library's);
- Python 0.3+ and the Stainless-generated SDKs of other languages send `User-Agent: Anthropic/Python
  0.125.0` (or `Anthropic/JS 0.30.1`, `Anthropic/Go 1.2.0`...) and `x-stainless-lang` +
  `x-stainless-package-version`.
"""

import re
from dataclasses import dataclass

# "Anthropic/Python 0.125.0", "Anthropic/JS 1.0.0", "anthropic/go v2.0.0"
USER_AGENT_PATTERN = re.compile(
    r"\banthropic/(?P<lang>[a-z#+.-]+)[ /]v?(?P<version>\d+(?:\.\d+)*[\w.+-]*)", re.I
)
# "anthropic-python/0.2.10", "anthropic-typescript/0.4.3"
SDK_HEADER_PATTERN = re.compile(
    r"\banthropic-(?P<lang>[a-z#+.-]+)/v?(?P<version>\d+(?:\.\d+)*[\w.+-]*)", re.I
)

# Stainless and 0.2.x spell languages differently; the name shown is one per language.
LANGUAGE_NAMES = {
    "python": "Python",
    "js": "JS",
    "javascript": "JS",
    "typescript": "JS",
    "node": "JS",
    "go": "Go",
    "java": "Java",
    "kotlin": "Kotlin",
    "ruby": "Ruby",
    "php": "PHP",
    "c#": "C#",
    "csharp": "C#",
    "dotnet": "C#",
    ".net": "C#",
    "cli": "CLI",
}


@dataclass(frozen=True)
class Sdk:
    """An SDK and its release, e.g. Sdk("Python", "0.125.0")."""

    language: str
    version: str

    @property
    def name(self) -> str:
        return f"anthropic-{self.language.lower()}"

    @property
    def major(self) -> int | None:
        match = re.match(r"\d+", self.version)
        return int(match.group()) if match else None

    @property
    def release(self) -> tuple[int, ...]:
        """The numeric parts of the version, for ordering releases: "0.125.0" -> (0, 125, 0)."""
        return tuple(int(part) for part in re.findall(r"\d+", self.version.split("-")[0].split("+")[0]))

    @property
    def major_label(self) -> str:
        return f"{self.language} {self.major}.x" if self.major is not None else self.language

    def __str__(self) -> str:
        return f"{self.language} {self.version}"


def sdk_move(before: Sdk, after: Sdk) -> str:
    """How a client's SDK changed: "upgrade", "downgrade" or "change" (another language, or versions
    that cannot be ordered)."""
    if before.language != after.language or not before.release or not after.release:
        return "change"
    if after.release > before.release:
        return "upgrade"
    if after.release < before.release:
        return "downgrade"
    return "change"


def _language(raw: str) -> str:
    return LANGUAGE_NAMES.get(raw.lower(), raw[:1].upper() + raw[1:])


def sdk_parse(*, user_agent: str = "", headers: dict | None = None, sdk: str = "") -> Sdk | None:
    """The SDK a request came from, or None for a request no known SDK sent.

    `headers` are the request headers (any case); `sdk` is a stored description such as
    "Anthropic/Python 0.125.0", used when the headers are gone.
    """
    lowered = {str(name).lower(): str(value) for name, value in (headers or {}).items()}
    user_agent = user_agent or lowered.get("user-agent", "")
    match = USER_AGENT_PATTERN.search(user_agent)
    if match:
        return Sdk(_language(match["lang"]), match["version"])
    match = SDK_HEADER_PATTERN.search(lowered.get("anthropic-sdk", ""))
    if match:
        return Sdk(_language(match["lang"]), match["version"])
    stainless_version = lowered.get("x-stainless-package-version", "").strip()
    if stainless_version:
        return Sdk(
            _language(lowered.get("x-stainless-lang", "unknown").strip() or "unknown"), stainless_version
        )
    for pattern in (USER_AGENT_PATTERN, SDK_HEADER_PATTERN):
        match = pattern.search(sdk)
        if match:
            return Sdk(_language(match["lang"]), match["version"])
    match = re.match(r"(?P<lang>[A-Za-z#+.-]+)[ /]v?(?P<version>\d+(?:\.\d+)*\S*)$", sdk.strip())
    if match:
        return Sdk(_language(match["lang"].removeprefix("anthropic-")), match["version"])
    return None


def sdk_describe(*, user_agent: str = "", headers: dict | None = None) -> str:
    """The short form stored in Exchange.sdk, e.g. "Python 0.125.0"; empty when unknown."""
    parsed = sdk_parse(user_agent=user_agent, headers=headers)
    return str(parsed) if parsed else ""
