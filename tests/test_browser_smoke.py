from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from tests.conftest import axe_violations
from tests.support.browser import live_server


@pytest.mark.browser
def test_form_opens_in_browser(app: Flask, page: Any) -> None:
    with live_server(app) as base:
        page.goto(f"{base}/subscribe")
        assert page.get_by_role("heading", name="Sign up for updates").is_visible()
        assert axe_violations(page) == []
