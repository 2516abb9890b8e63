"""Peer security keys (docs/security.md): TCP MD5 from ``password`` or ``password_file``,
``ttl_security``, flood limits, ``[policy] third_party``; errors name the key; a reload
resets the session for a new key and applies limits live."""

from __future__ import annotations

from pathlib import Path

import pytest

from masc.config import ConfigError, MascConfig, parse_config_text
from masc.daemon.reload import plan_reload
from masc.daemon.settings import engine_policy, peer_limits, session_config
from masc.protocol.engine import ThirdParty
from masc.protocol.limits import LimitAction

LOCAL = '[local]\ndomain_id = 65001\nnode_id = "127.0.9.1"\nglobal_pool = ["239.192.0.0/16"]\n'
PEER = '[[peers]]\naddress = "127.0.9.2"\nrelation = "sibling"\ndomain_id = 65002\n'


def load(text: str) -> MascConfig:
    return parse_config_text(LOCAL + text, source="t.toml")


def test_defaults_are_unsigned_unlimited_and_via_parent() -> None:
    cfg = load(PEER)
    (peer,) = cfg.peers
    assert peer.md5_key is None and peer.ttl_security is None
    assert not peer_limits(peer).any and peer.limit_action == "drop"
    assert engine_policy(cfg.policy).third_party is ThirdParty.VIA_PARENT


def test_password_and_its_file(tmp_path: Path) -> None:
    assert load(PEER + 'password = "s3cret"\n').peers[0].md5_key == b"s3cret"
    key = tmp_path / "key"
    key.write_bytes(b"from-a-file\nignored second line\n")
    assert load(PEER + f'password_file = "{key}"\n').peers[0].md5_key == b"from-a-file"


def test_the_password_never_shows_in_the_model_s_text() -> None:
    (peer,) = load(PEER + 'password = "s3cret"\n').peers
    assert "s3cret" not in repr(peer) and "s3cret" not in str(peer.model_dump())


def test_limits_reach_the_session() -> None:
    cfg = load(PEER + "max_claims = 64\nmax_update_rate = 20\nupdate_burst = 300\n"
               'limit_action = "reset"\n')  # fmt: skip
    limits = session_config(cfg, cfg.peers[0]).limits
    assert (limits.max_claims, limits.max_update_rate, limits.update_burst) == (64, 20, 300)
    assert limits.action is LimitAction.RESET


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ('password = ""\n', "peers[0].password", "at least 1"),
        (f'password = "{"x" * 81}"\n', "peers[0].password", "at most 80"),
        ('password = "a"\npassword_file = "/etc/hostname"\n', "peers[0].password_file",
         "either password or password_file"),
        ('password_file = "/nonexistent/key"\n', "peers[0].password_file", "cannot read"),
        ("ttl_security = 0\n", "peers[0].ttl_security", "greater than or equal to 1"),
        ("ttl_security = 255\n", "peers[0].ttl_security", "less than or equal to 254"),
        ("max_claims = 0\n", "peers[0].max_claims", "greater than or equal to 1"),
        ("max_update_rate = 0\n", "peers[0].max_update_rate", "greater than 0"),
        ("update_burst = 10\n", "peers[0].update_burst", "needs max_update_rate"),
        ('limit_action = "ignore"\n', "peers[0].limit_action", "'warn', 'drop' or 'reset'"),
    ],
)  # fmt: skip
def test_bad_values_name_the_key(text: str, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load(PEER + text)
    message = str(raised.value)
    assert f"t.toml: {key}" in message and problem in message, message


def test_a_password_is_counted_in_octets_and_never_echoed_in_errors() -> None:
    """Review findings: 41 two-octet characters passed an 80-character check; a bad
    password's value was printed in the error message (and so in logs and reload replies)."""
    with pytest.raises(ConfigError) as raised:
        load(PEER + f'password = "{"é" * 41}"\n')
    assert "peers[0].password: is 82 octets" in str(raised.value)
    for bad in ('"' + "s3cret-" * 20 + '"', "12345678"):
        with pytest.raises(ConfigError) as raised:
            load(PEER + f"password = {bad}\n")
        message = str(raised.value)
        assert "peers[0].password" in message
        assert "s3cret" not in message and "12345678" not in message, message


def test_an_empty_or_too_long_key_file(tmp_path: Path) -> None:
    empty, long = tmp_path / "empty", tmp_path / "long"
    empty.write_bytes(b"\n")
    long.write_bytes(b"k" * 81)
    for path, problem in ((empty, "holds no key"), (long, "at most 80")):
        with pytest.raises(ConfigError) as raised:
            load(PEER + f'password_file = "{path}"\n')
        assert "peers[0].password_file" in str(raised.value) and problem in str(raised.value)


def test_sessions_to_one_address_share_key_and_ttl_security() -> None:
    """Two sibling sessions to one router, per common parent (§4.4): the kernel keys MD5 by
    address, so the keys must agree."""
    two_parents = (
        '[local]\ndomain_id = 65001\nnode_id = "127.0.9.1"\nparent_domain_ids = [10, 11]\n'
    )
    sib = '[[peers]]\naddress = "127.0.9.2"\nrelation = "sibling"\ndomain_id = 65002\n'
    text = (two_parents + sib + 'parent_domain_id = 10\npassword = "a"\n'
            + sib + 'parent_domain_id = 11\npassword = "b"\nttl_security = 1\n')  # fmt: skip
    with pytest.raises(ConfigError) as raised:
        parse_config_text(text, source="t.toml")
    message = str(raised.value)
    assert "peers[1].password: differs from peers[0]" in message
    assert "peers[1].ttl_security: differs from peers[0]" in message


def test_third_party_values() -> None:
    for value, mode in (("accept", ThirdParty.ACCEPT), ("strict", ThirdParty.STRICT)):
        cfg = load(f'[policy]\nthird_party = "{value}"\n')
        assert engine_policy(cfg.policy).third_party is mode
    with pytest.raises(ConfigError) as raised:
        load('[policy]\nthird_party = "never"\n')
    assert "t.toml: policy.third_party" in str(raised.value)


# --- reload ----------------------------------------------------------------------------------


def _action(old: str, new: str) -> tuple[str, tuple[str, ...]]:
    plan = plan_reload(load(old), load(new))
    (step,) = plan.peers
    return step.action, step.changed


def test_reload_a_new_password_or_ttl_security_resets_the_session() -> None:
    assert _action(PEER, PEER + 'password = "k"\n') == ("reset", ("password",))
    assert _action(PEER, PEER + "ttl_security = 1\n") == ("reset", ("ttl_security",))


def test_reload_a_new_key_in_the_same_file_resets_the_session(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("one\n")
    text = PEER + f'password_file = "{key}"\n'
    before = load(text)
    key.write_text("two\n")
    (step,) = plan_reload(before, load(text)).peers
    assert (step.action, step.changed) == ("reset", ("password_file",))


def test_reload_limits_apply_without_a_reset() -> None:
    action, changed = _action(PEER, PEER + 'max_claims = 8\nlimit_action = "warn"\n')
    assert action == "update" and changed == ("limit_action", "max_claims")
