"""Who sent this? A DMARC verdict (with SPF and DKIM alignment) for one inbound message.

Three modes (`HELPDESK_SENDER_VERIFICATION`):
- `check`: the gateway verifies itself: SPF (pyspf) for the SMTP client's address and MAIL FROM,
  DKIM signatures (dkimpy) and DMARC with alignment (authheaders), every DNS query through one
  configurable dnspython resolver (`HELPDESK_DNS_RESOLVER`, else the system's).
- `trust-mta`: an MTA in front verified the message; its `Authentication-Results` header
  (RFC 8601) is believed only when its authserv-id is in `HELPDESK_TRUSTED_AUTHSERV_IDS`.
- `off`: no verdict; every sender is unverified.
In every mode, `Authentication-Results` headers from anyone not trusted are removed before the
message is stored (RFC 8601 §5): nobody can pass a verdict off as ours or our MTA's.
"""

from __future__ import annotations

import contextvars
import functools
import importlib.resources
import re
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
import authheaders
import authheaders.dmarc_lookup
import spf
from authheaders import check_dkim, check_dmarc
from authres import AuthenticationResultsHeader, DKIMAuthenticationResult, SPFAuthenticationResult
from publicsuffix2 import PublicSuffixList

OFF, TRUST_MTA, CHECK = "off", "trust-mta", "check"
MODES = (OFF, TRUST_MTA, CHECK)

_AR_HEADER = re.compile(rb"^authentication-results:[^\n]*\n(?:[ \t][^\n]*\n)*", re.I | re.M)
_AUTHSERV_ID = re.compile(rb"^authentication-results:\s*([^;\s]+)", re.I)
_POLICY = re.compile(r"\b(?:p|policy\.dmarc)=(reject|quarantine|none)\b", re.I)


@dataclass(frozen=True)
class Verdict:
    dmarc: str  # pass, fail, none, temperror, permerror
    policy: str | None = None  # the From domain's DMARC policy: reject, quarantine, none
    spf: str | None = None
    dkim: str | None = None
    source: str = OFF  # which mode produced it

    @property
    def verified(self) -> bool:
        return self.dmarc == "pass"

    @property
    def spoofed(self) -> bool:
        """DMARC fail where the domain's owner asked receivers to refuse or quarantine."""
        return self.dmarc == "fail" and self.policy in ("reject", "quarantine")

    def summary(self) -> str:
        parts = [f"dmarc={self.dmarc}" + (f" (p={self.policy})" if self.policy else "")]
        parts += [f"{name}={value}" for name, value in (("spf", self.spf), ("dkim", self.dkim)) if value]
        return " ".join(parts) + f" via {self.source}"


UNVERIFIED = Verdict("none", source=OFF)


def strip_untrusted(raw: bytes, trusted: frozenset[str]) -> bytes:
    """The message without the `Authentication-Results` headers of untrusted authserv-ids
    (header block only; the body is left as it is)."""
    end = raw.find(b"\n\n")
    end2 = raw.find(b"\r\n\r\n")
    head_end = min((e for e in (end, end2) if e >= 0), default=len(raw))
    head = raw[: head_end + 1]
    if b"uthentication-" not in head and b"UTHENTICATION-" not in head:
        return raw

    def keep(match: re.Match[bytes]) -> bytes:
        found = _AUTHSERV_ID.match(match.group())
        ident = found.group(1).decode("ascii", "replace").lower() if found else ""
        return match.group() if ident in trusted else b""

    return _AR_HEADER.sub(keep, head) + raw[head_end + 1:]


def trusted_verdict(headers: list[str], trusted: frozenset[str]) -> Verdict:
    """The verdict of the first trusted `Authentication-Results` header carrying a DMARC result
    (the topmost: added last, by the MTA nearest to us)."""
    for value in headers:
        try:
            parsed = AuthenticationResultsHeader.parse(f"Authentication-Results: {value}")
        except Exception:  # a malformed header is no verdict
            continue
        if str(parsed.authserv_id).lower() not in trusted:
            continue
        results = {str(r.method).lower(): r for r in parsed.results}
        dmarc = results.get("dmarc")
        if dmarc is None:
            continue
        policy = _POLICY.search(str(dmarc.result_comment or "") + " " + str(dmarc))
        return Verdict(
            dmarc=str(dmarc.result).lower(), policy=policy.group(1).lower() if policy else None,
            spf=_result(results.get("spf")), dkim=_result(results.get("dkim")), source=TRUST_MTA,
        )
    return Verdict("none", source=TRUST_MTA)


def _result(result: object) -> str | None:
    return str(result.result).lower() if result is not None else None  # type: ignore[attr-defined]


# pyspf looks its DNS function up at each query; this hook routes it to the resolver of the
# verification in progress (a context variable: each check carries its own, no shared state)
_SPF_RESOLVER: contextvars.ContextVar[dns.resolver.Resolver | None] = contextvars.ContextVar("spf_resolver", default=None)
_SYSTEM_LOOKUP = spf.DNSLookup


def _spf_lookup(name: str, qtype: str, strict: bool = True, timeout: float = 20) -> list[tuple[tuple[str, str], object]]:
    resolver = _SPF_RESOLVER.get()
    if resolver is None:
        return _SYSTEM_LOOKUP(name, qtype, strict, timeout)
    found: list[tuple[tuple[str, str], object]] = []
    try:
        for rdata in resolver.resolve(name, qtype, lifetime=min(timeout, resolver.lifetime)):
            if qtype in ("A", "AAAA"):
                found.append(((name, qtype), rdata.address))
            elif qtype == "MX":
                found.append(((name, qtype), (rdata.preference, rdata.exchange)))
            elif qtype == "PTR":
                found.append(((name, qtype), rdata.target.to_text(True)))
            elif qtype in ("TXT", "SPF"):
                found.append(((name, qtype), rdata.strings))
    except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
        pass
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise spf.TempError(f"DNS {exc}") from None
    return found


spf.DNSLookup = _spf_lookup


@functools.lru_cache(maxsize=1)
def _suffix_list() -> PublicSuffixList:
    with (importlib.resources.files("authheaders") / "public_suffix_list.txt").open(encoding="utf-8") as found:
        return PublicSuffixList(found)


@functools.lru_cache(maxsize=10_000)
def _org_domain(domain: str) -> str:
    return _suffix_list().get_public_suffix(domain)


# authheaders builds the Public Suffix List from its file at every lookup (0.75 s a message
# here); it is the same list each time: built once, and the answers remembered
authheaders.get_org_domain = _org_domain
authheaders.dmarc_lookup.get_org_domain = _org_domain


def make_resolver(nameserver: str | None, timeout: float) -> dns.resolver.Resolver:
    """A caching resolver: for `host:port` (tests point it at a DNS server on loopback), else
    the system's configuration. Answers, NXDOMAIN included, are cached for their TTL: mail
    comes from the same few domains again and again."""
    if nameserver:
        host, _, port = nameserver.rpartition(":") if nameserver.count(":") == 1 else (nameserver, "", "53")
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [host]
        resolver.port = int(port or 53)
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
    resolver.lifetime = resolver.timeout = timeout
    resolver.cache = dns.resolver.LRUCache(50_000)
    return resolver


def _txt_lookup(resolver: dns.resolver.Resolver | None, timeout: float) -> Callable[..., bytes | None]:
    """dkimpy's DNS function: the TXT record of a name as bytes, or None."""
    active = resolver or dns.resolver.Resolver()

    def txt(name: bytes | str, timeout: float = timeout) -> bytes | None:
        qname = name.decode() if isinstance(name, bytes) else name
        try:
            answer = active.resolve(qname, "TXT", lifetime=timeout, raise_on_no_answer=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers, dns.exception.Timeout,
                dns.resolver.NoResolverConfiguration, dns.name.EmptyLabel, dns.name.LabelTooLong):
            return None
        for record in answer.response.answer:
            if record.rdtype == dns.rdatatype.TXT:
                return b"".join(list(record.items)[0].strings)
        return None

    return txt


def _text_lookup(txt: Callable[..., bytes | None]) -> Callable[..., str | None]:
    """authheaders' DMARC lookup wants the same record as text."""

    def text(name: str) -> str | None:
        found = txt(name)
        return found.decode("utf-8", "replace") if found is not None else None

    return text


def check(
    raw: bytes, *, ip: str | None, mail_from: str, helo: str | None, resolver: dns.resolver.Resolver | None,
    timeout: float = 3.0, authserv_id: str = "helpdesk",
) -> Verdict:
    """SPF, DKIM and DMARC computed here. Blocking (DNS): run it in a thread."""
    spf_result = "none"
    if ip:
        token = _SPF_RESOLVER.set(resolver)
        try:
            spf_result, _ = spf.check2(i=ip, s=mail_from or f"postmaster@{helo or 'unknown'}", h=helo or "unknown",
                                       timeout=timeout, querytime=timeout)
        except Exception:
            spf_result = "temperror"
        finally:
            _SPF_RESOLVER.reset(token)
    envelope = mail_from or f"postmaster@{helo or 'unknown'}"
    txt = _txt_lookup(resolver, timeout)
    try:
        signed = bool(header_values(raw, b"dkim-signature"))
        dkim = check_dkim(raw, dnsfunc=txt) if signed else DKIMAuthenticationResult(result="none")
        # the result objects go to the DMARC check as they are: written out as an
        # Authentication-Results header and parsed back (twice), they cost half of the check
        spf_found = SPFAuthenticationResult(result=spf_result, smtp_mailfrom=envelope)
        dmarc = check_dmarc(raw, spf_found, dkim, dnsfunc=_text_lookup(txt))
        policy = _POLICY.search(str(dmarc.result_comment or "") + " " + str(dmarc))
        return Verdict(
            dmarc=str(dmarc.result).lower(), policy=policy.group(1).lower() if policy else None,
            spf=_result(spf_found), dkim=_result(dkim), source=CHECK,
        )
    except Exception:  # a library bug or hostile input: no verdict, i.e. unverified
        return Verdict("temperror", spf=spf_result, source=CHECK)


def header_values(raw: bytes, name: bytes = b"authentication-results") -> list[str]:
    """Unfolded values of one header in the header block, topmost first."""
    end = min((e for e in (raw.find(b"\n\n"), raw.find(b"\r\n\r\n")) if e >= 0), default=len(raw))
    pattern = re.compile(rb"^" + re.escape(name) + rb":([^\n]*\n(?:[ \t][^\n]*\n)*)", re.I | re.M)
    return [
        " ".join(found.group(1).decode("utf-8", "replace").split())
        for found in pattern.finditer(raw, 0, end + 1)
    ]
