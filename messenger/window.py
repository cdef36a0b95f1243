"""Meta's messaging window: when the Page may write to a person, and how.

Within 24 hours of the person's last message the Page may send anything. After that, only a
message tagged HUMAN_AGENT, written by a person, for up to 7 days, and only with that
permission granted to the app. Later, nothing. With no message from the person stored, the
window is unknown and Meta decides.
"""

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

STANDARD = timedelta(hours=24)
HUMAN_AGENT = timedelta(days=7)
HUMAN_AGENT_TAG = "HUMAN_AGENT"


class Window(enum.Enum):
    UNKNOWN = "unknown"  # no message from the person stored
    OPEN = "open"  # within 24 hours
    HUMAN_AGENT = "human_agent"  # 24 hours to 7 days: a person's message, tagged
    CLOSED = "closed"  # past 7 days


@dataclass(frozen=True)
class WindowState:
    window: Window
    # When the current window closes (None when unknown or closed).
    closes_at: datetime | None


def messaging_window(*, person_last_wrote_at: datetime | None, now: datetime) -> WindowState:
    if person_last_wrote_at is None:
        return WindowState(Window.UNKNOWN, None)
    for window, length in ((Window.OPEN, STANDARD), (Window.HUMAN_AGENT, HUMAN_AGENT)):
        if now < person_last_wrote_at + length:
            return WindowState(window, person_last_wrote_at + length)
    return WindowState(Window.CLOSED, None)
