"""Debian's Chromium driven by Playwright, and logging in to the admin as the browser tests' moderator.

The browser is /usr/bin/chromium (`make test` installs it with apt-get when it is missing);
Playwright never downloads one.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from devtools.processes import BASE_DIR

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = BASE_DIR / "test-artifacts"
MODERATOR, PASSWORD = "maria", "a-moderator-password"


@contextmanager
def chromium_page(profile_dir: Path) -> Iterator[Page]:
    """A page in Debian's Chromium. No ORM calls inside: Playwright runs its own event loop
    (and greenlets) in this thread, where Django would open a second, unmanaged connection."""
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=profile_dir,
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 900},
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def log_in(page: Page, *, url: str) -> None:
    """Open `url` and log in as the moderator on the admin's login page it leads to."""
    page.goto(url)
    page.fill("#id_username", MODERATOR)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
