"""Errors raised by services; the API and page layers turn them into 4xx responses."""

from __future__ import annotations


class Conflict(Exception):
    """The request is well-formed but clashes with the current state (duplicate name, wrong status): 409."""


class PayloadTooLarge(Exception):
    """An upload or body exceeds a configured limit: 413."""
