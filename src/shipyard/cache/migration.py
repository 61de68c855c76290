"""Re-signing pickles stored under the old shared HMAC key with the Ed25519 private key
(``shipyard cache migrate-signatures``).

Pickles used to be signed with one HMAC key that every reader held, and so could forge with.
Readers now verify Ed25519 signatures with the public key alone and refuse HMAC-signed values,
so the values stored before must be re-signed once, in every version of every namespace, in
every region of a replicated cache.

It is an explicit command rather than something a writer does on open because it needs the
old HMAC key (each old signature is checked before the value is vouched for with the new key:
a forged old value is reported, never laundered) besides the private key; because it reads
every stored value, which for a large cache is minutes of work and a write load that a flow
step writing ten keys should not pay by surprise (nor ten such steps at once); and because its
report of what it could not re-sign needs someone to read it.

A value is re-signed where it is, by compare-and-set (a value that changed meanwhile is left
alone); values already signed with the current pair are skipped and the payload is never
unpickled. So a run is idempotent, and an interrupted run is resumed by running it again. A
value that cannot be re-signed (its HMAC signature does not verify, no old key was found, it is
signed by another Ed25519 pair, or an unknown format) is left as it is, which readers refuse,
and reported with its version.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field

from shipyard.cache import codec, signing
from shipyard.cache.backends.base import Backend, CacheError
from shipyard.cache.namespaces import RESERVED_KEY_PREFIX, SETTINGS_PREFIX

#: how many unresolved keys a result lists by name (all are counted)
LISTED = 20
_DIGEST = 32


@dataclass
class VersionResult:
    """What the migration did to one version in one region."""

    region: str
    namespace: str
    version: str
    resigned: int = 0  # HMAC-signed values now signed with the private key
    current: int = 0  # already signed with the current pair
    plain: int = 0  # msgpack (and bulk loads' part markers): nothing to sign
    unresolved: int = 0  # values left as they were, which readers refuse
    reasons: dict[str, str] = field(default_factory=dict)  # key -> why (the first LISTED)
    error: str | None = None  # the version could not be read or written (all of it)
    dropped: bool = False  # the version was dropped while the migration ran

    @property
    def complete(self) -> bool:
        """Whether every value of the version can now be read."""
        return self.error is None and self.unresolved == 0

    def leave(self, key: bytes, why: str) -> None:
        self.unresolved += 1
        if len(self.reasons) < LISTED:
            self.reasons[key.decode(errors="backslashreplace")] = why


def regions(backend: Backend) -> list[Backend]:
    """The backends to migrate one by one: each region of a replicated cache, else itself."""
    from shipyard.cache.backends.replicated import ReplicatedBackend

    return backend.backends if isinstance(backend, ReplicatedBackend) else [backend]


def migrate(
    backend: Backend,
    hmac_key: bytes | None,
    *,
    namespaces: Collection[str] = (),
    progress: Callable[[VersionResult], None] = lambda result: None,
) -> list[VersionResult]:
    """Re-sign every HMAC-signed value in ``backend`` (every region, namespace and version,
    published or not; only ``namespaces`` if given) with the private key, checking each old
    signature with ``hmac_key`` first. ``progress`` is
    called with each version's result as it is done."""
    signer = signing.signer()
    results: list[VersionResult] = []
    for region in regions(backend):
        for result in _region(region, hmac_key, signer, namespaces):
            progress(result)
            results.append(result)
    return results


def _region(
    region: Backend,
    hmac_key: bytes | None,
    signer: signing.Signer,
    only: Collection[str],
) -> Iterator[VersionResult]:
    try:
        # settings namespaces hold only the cache's own msgpack, never a pickle
        names = [
            n
            for n in region.namespaces()
            if not n.startswith(SETTINGS_PREFIX) and (not only or n in only)
        ]
    except CacheError as exc:
        yield VersionResult(region.url, "*", "*", error=str(exc))
        return
    for namespace in names:
        try:
            versions = region.versions(namespace)
        except CacheError as exc:
            yield VersionResult(region.url, namespace, "*", error=str(exc))
            continue
        for info in versions:
            result = VersionResult(region.url, namespace, info.version)
            try:
                _version(region, result, hmac_key, signer)
            except CacheError as exc:
                result.error = str(exc)
                result.dropped = _gone(region, namespace, info.version)
                if result.dropped:
                    result.error = None
            yield result


def _gone(region: Backend, namespace: str, version: str) -> bool:
    try:
        return all(v.version != version for v in region.versions(namespace))
    except CacheError:
        return False


def _version(
    region: Backend,
    result: VersionResult,
    hmac_key: bytes | None,
    signer: signing.Signer,
) -> None:
    namespace, version = result.namespace, result.version
    for batch in region.scan(namespace, version):
        changes: list[tuple[bytes, bytes, bytes]] = []
        for key, value in batch:
            tag = value[:1]
            if tag == codec.MSGPACK or key[:1] == RESERVED_KEY_PREFIX:  # or a bulk part marker
                result.plain += 1
            elif tag == codec.PICKLE:
                named = codec.signed_by(value)
                if named == signer.key_id:
                    result.current += 1
                else:
                    result.leave(key, f"signed by another key pair ({(named or b'').hex()})")
            elif tag == codec.HMAC_PICKLE:
                if hmac_key is None:
                    result.leave(key, "HMAC-signed, and no old HMAC key was found to check it")
                    continue
                payload = _hmac_payload(value, hmac_key)
                if payload is None:
                    result.leave(key, "its HMAC signature does not verify (tampered?)")
                else:
                    changes.append((key, value, codec.sign(payload, signer)))
            else:
                result.leave(key, f"unknown format tag {tag!r}")
        if not changes:
            continue
        if region.replace_values(namespace, version, changes) == len(changes):
            result.resigned += len(changes)
        else:
            _recheck(region, result, changes, signer)


def _recheck(
    region: Backend,
    result: VersionResult,
    changes: list[tuple[bytes, bytes, bytes]],
    signer: signing.Signer,
) -> None:
    """Some values were not replaced: they changed meanwhile (a concurrent migration, a
    key SCAN returned twice, a writer). Count what each holds now."""
    keys = [key for key, _, _ in changes]
    now = region.get_many(result.namespace, result.version, keys)
    for (key, _, new), value in zip(changes, now, strict=True):
        if value == new:
            result.resigned += 1
        elif value is not None and codec.signed_by(value) == signer.key_id:
            result.current += 1
        elif value is not None and value[:1] == codec.MSGPACK:
            result.plain += 1
        else:
            result.leave(key, "changed while being re-signed: run the migration again")


def _hmac_payload(value: bytes, key: bytes) -> bytes | None:
    """The pickle in an old HMAC-signed value if its signature verifies with ``key``."""
    digest, payload = value[1 : 1 + _DIGEST], value[1 + _DIGEST :]
    expected = hmac.new(key, payload, hashlib.sha256).digest()
    if len(digest) != _DIGEST or not hmac.compare_digest(digest, expected):
        return None
    return payload
