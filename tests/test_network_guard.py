"""Tests must never reach another host; the guard in conftest.py enforces it."""

from __future__ import annotations

import socket

import pytest


def test_guard_rejects_other_hosts() -> None:
    with socket.socket() as sock, pytest.raises(OSError, match="loopback"):
        sock.connect(("192.0.2.1", 80))
