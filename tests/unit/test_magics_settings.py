"""AtpMagics settings (traitlets) without a shell: validation, and the lazy session."""

from __future__ import annotations

from typing import cast

import pytest
from traitlets import TraitError
from traitlets.config import Config

from atp_notebook.notebook import AtpMagics
from atp_notebook.session import Session


def test_defaults() -> None:
    m = AtpMagics()
    assert (m.timeout, m.events_window, m.config_path, m.default_vm, m.progress) == (
        30.0, 2.0, None, None, True)
    assert not m.context.connected  # nothing connects before a magic needs it


def test_settings_come_from_config() -> None:
    m = AtpMagics(config=Config({"AtpMagics": {"timeout": 5, "default_vm": "atp-vm1@tls"}}))
    assert m.timeout == 5.0
    assert m.context.selector().default == "atp-vm1@tls"


def test_a_bad_value_is_refused_once_constructed() -> None:
    m = AtpMagics()
    with pytest.raises(TraitError, match=r"AtpMagics\.timeout must be more than 0 seconds"):
        m.timeout = 0
    with pytest.raises(TraitError, match="events_window"):
        m.events_window = -1
    assert (m.timeout, m.events_window) == (30.0, 2.0)


def test_a_bad_stored_value_does_not_stop_loading(caplog: pytest.LogCaptureFixture) -> None:
    # regression: %config keeps a rejected value in the shell's config, and %reload_ext
    # then failed in AtpMagics.__init__ with a TraitError
    m = AtpMagics(config=Config({"AtpMagics": {"timeout": 0}}))
    assert m.timeout == 30.0
    assert "must be more than 0 seconds, not 0; using 30" in caplog.text


def test_changing_config_path_drops_the_session() -> None:
    connects: list[str | None] = []

    class FakeSession:
        def close(self) -> None:
            connects.append("closed")

    def connector(path: str | None) -> Session:
        connects.append(path)
        return cast(Session, FakeSession())

    m = AtpMagics()
    m.context._connector = connector
    assert m.context.session is m.context.session
    m.config_path = "/tmp/other.yaml"
    assert not m.context.connected
    m.context.session  # noqa: B018 - connects again, with the new path
    assert connects == [None, "closed", "/tmp/other.yaml"]
