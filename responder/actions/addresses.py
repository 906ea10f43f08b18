"""IP addresses a playbook asks to block: parsed, CIDR-normalized and screened (pure).

The addresses usually come from events (`actor.ip`), and whoever can write to the events topic
shapes them. So every entry is parsed strictly (`ipaddress`, no host bits under the prefix, at
most `MAX_TEXT` characters) and written in one canonical form (`198.51.100.7/32`, compressed
IPv6; an IPv4-mapped IPv6 address becomes the IPv4 one), and the screen refuses what must never
be blocked from an event's say-so:

- addresses that are never a client: unspecified, loopback, link-local, multicast, broadcast and
  reserved ranges (a block of 0.0.0.0/0 overlaps them all);
- private and shared ranges (RFC 1918, 100.64.0.0/10, fc00::/7) unless `allow_private`: a
  spoofed `actor.ip` must not lock out the load balancer or internal clients;
- networks wider than the policy's minimum prefix length (/24 and /48 by default);
- anything overlapping the operator's `never_block` networks (own egress, health checkers).

Documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are
accepted: they are what tests and the demo use, and blocking them harms nobody.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Family = Literal["IPV4", "IPV6"]

MAX_ADDRESSES: Final = 1000  # per call: more is not a job for one step
MAX_TEXT: Final = 64  # characters of one entry (the longest IPv6 CIDR is 43)

_NEVER_CLIENTS: Final[tuple[Network, ...]] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "224.0.0.0/4",
        "240.0.0.0/4",  # reserved, and 255.255.255.255
        "::/128",
        "::1/128",
        "fe80::/10",
        "ff00::/8",
    )
)
_PRIVATE: Final[tuple[Network, ...]] = tuple(
    ipaddress.ip_network(n)
    for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)


class AddressError(ValueError):
    """One entry that is not an address or network in canonical form."""


def family(network: Network) -> Family:
    return "IPV4" if network.version == 4 else "IPV6"


def parse(text: object) -> Network:
    """One entry as a network (`198.51.100.7` → 198.51.100.7/32); `AddressError` says why not."""
    if not isinstance(text, str):
        raise AddressError(f"not a string: {type(text).__name__}")
    raw = text.strip()
    if not raw:
        raise AddressError("empty")
    if len(raw) > MAX_TEXT:
        raise AddressError(f"longer than {MAX_TEXT} characters")
    if not all(c in "0123456789abcdefABCDEF.:/" for c in raw):
        raise AddressError("not an IP address or CIDR")
    kind = ipaddress.IPv6Network if ":" in raw else ipaddress.IPv4Network
    try:
        network: Network = kind(raw, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            raise AddressError("host bits set under the prefix (write the network)") from None
        if "netmask" in str(exc) or "prefix" in str(exc):
            raise AddressError("invalid prefix length") from None
        raise AddressError("not a valid IP address or network") from None
    if isinstance(network, ipaddress.IPv6Network) and network.prefixlen == 128:
        mapped = network.network_address.ipv4_mapped
        if mapped is not None:
            return ipaddress.ip_network(f"{mapped}/32")
    return network


def canonical(network: Network) -> str:
    """The form written to the IP set: always with the prefix length, IPv6 compressed."""
    return network.with_prefixlen


def canonical_or_none(text: str) -> str | None:
    """An entry already in an IP set, compared by its canonical form; None if it has none."""
    try:
        return canonical(ipaddress.ip_network(text.strip(), strict=False))
    except ValueError:
        return None


@dataclass(frozen=True)
class Policy:
    """What the screen lets through."""

    allow_private: bool = False
    min_prefix_v4: int = 24
    min_prefix_v6: int = 48
    never_block: tuple[Network, ...] = ()


@dataclass(frozen=True)
class Refused:
    address: str  # as given, clipped (it may be hostile: shown, never interpreted)
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"address": self.address, "reason": self.reason}


@dataclass(frozen=True)
class Screened:
    """Accepted networks (canonical, each once, in the order given) and what was refused."""

    accepted: tuple[Network, ...] = ()
    refused: tuple[Refused, ...] = field(default_factory=tuple)


def shown(text: object) -> str:
    """An entry as it may be shown: printable, clipped (it may be hostile)."""
    raw = repr(text) if not isinstance(text, str) else text
    clean = "".join(c if c.isprintable() else "?" for c in raw[:200])
    return clean if len(clean) <= 48 else clean[:47] + "…"


def _overlaps(network: Network, ranges: Iterable[Network]) -> Network | None:
    for other in ranges:
        if network.version == other.version and network.overlaps(other):
            return other
    return None


def _policy_reason(network: Network, policy: Policy) -> str | None:
    never = _overlaps(network, _NEVER_CLIENTS)
    if never is not None:
        return f"overlaps {never}, which is never a client address"
    if not policy.allow_private:
        private = _overlaps(network, _PRIVATE)
        if private is not None:
            return f"overlaps the private range {private} (allow_private is off)"
    minimum = policy.min_prefix_v4 if network.version == 4 else policy.min_prefix_v6
    if network.prefixlen < minimum:
        return f"wider than /{minimum} (the minimum prefix length)"
    protected = _overlaps(network, policy.never_block)
    if protected is not None:
        return f"overlaps {protected}, listed in never_block"
    return None


def screen(addresses: Sequence[object], policy: Policy | None = None) -> Screened:
    """Parse, normalize, deduplicate and screen `addresses` (see the module docstring)."""
    policy = policy or Policy()
    accepted: dict[str, Network] = {}
    refused: list[Refused] = []
    for text in addresses:
        try:
            network = parse(text)
        except AddressError as exc:
            refused.append(Refused(shown(text), str(exc)))
            continue
        reason = _policy_reason(network, policy)
        if reason is not None:
            refused.append(Refused(shown(text), reason))
        else:
            accepted.setdefault(canonical(network), network)
    return Screened(tuple(accepted.values()), tuple(refused))


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Networks an operator listed (e.g. `never_block`): host bits are allowed, then cleared."""
    out: list[Network] = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError as exc:
            raise AddressError(f"{shown(entry)}: {exc}") from None
    return tuple(out)
