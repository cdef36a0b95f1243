"""The Page's Messenger profile: the welcome screen (get started, greeting, ice breakers) and the menu.

Pure functions on Meta's own JSON format (what `POST /me/messenger_profile` takes and `GET`
returns), so a file an operator writes and the profile built from settings pass the same
checks. The checks are Meta's documented limits, made before anything is sent: Meta would
refuse such a profile anyway, with a message far less clear than ours. Every ProfileError
is one line for the operator.
"""

import json
from collections.abc import Sequence
from typing import Any

MESSENGER_PROFILE_FIELDS = ("get_started", "greeting", "ice_breakers", "persistent_menu")
DEFAULT_LOCALE = "default"

GREETING_MAX_CHARS = 160
ICE_BREAKERS_MAX = 4
MENU_TITLE_MAX_CHARS = 30
MENU_ITEMS_MAX = 20
MENU_ITEM_TYPES = ("postback", "web_url")


class ProfileError(ValueError):
    """A profile Meta would refuse, or a text that is not a profile; the message says which, in one line."""


def messenger_profile_build(
    *, greeting: str, ice_breakers: str, get_started_payload: str, menu: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """The profile from settings: get started (with `get_started_payload`), the greeting (none
    when blank), one ice breaker per question of the JSON list `ice_breakers`, and a persistent
    menu of postback buttons, `menu` being their (title, payload).

    Each ice breaker's payload is its question, so a tap is answered like the same question typed.
    """
    try:
        questions = json.loads(ice_breakers or "[]")
    except (ValueError, RecursionError):
        questions = None
    if not isinstance(questions, list) or not all(isinstance(question, str) for question in questions):
        raise ProfileError(
            'MESSENGER_ICE_BREAKERS must be a JSON list of questions, e.g. ["Do you ship abroad?"]'
        )
    profile: dict[str, Any] = {"get_started": {"payload": get_started_payload}}
    if greeting.strip():
        profile["greeting"] = [{"locale": DEFAULT_LOCALE, "text": greeting.strip()}]
    if questions:
        profile["ice_breakers"] = [
            {
                "call_to_actions": [{"question": question, "payload": question} for question in questions],
                "locale": DEFAULT_LOCALE,
            }
        ]
    profile["persistent_menu"] = [
        {
            "locale": DEFAULT_LOCALE,
            "composer_input_disabled": False,
            "call_to_actions": [
                {"type": "postback", "title": title, "payload": payload} for title, payload in menu
            ],
        }
    ]
    return profile


def messenger_profile_parse(*, data: bytes) -> dict[str, Any]:
    """The JSON object in `data` (UTF-8, a BOM allowed); a ProfileError when it is not one."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ProfileError(f"not UTF-8 text (byte {error.start})") from error
    try:
        profile = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ProfileError(f"not JSON: {error}") from error
    if not isinstance(profile, dict):
        raise ProfileError(f"a profile is a JSON object ({{...}}), not {_json_type(profile)}")
    return profile


def messenger_profile_validate(*, profile: dict[str, Any]) -> None:
    """Nothing when Meta would take `profile`; else a ProfileError naming the first problem."""
    unknown = [field for field in profile if field not in MESSENGER_PROFILE_FIELDS]
    if unknown:
        raise ProfileError(
            f"unknown field {', '.join(map(repr, unknown))}; a profile has only {', '.join(MESSENGER_PROFILE_FIELDS)}"
        )
    if not profile:
        raise ProfileError(
            f"the profile is empty; give at least one of {', '.join(MESSENGER_PROFILE_FIELDS)}"
        )
    if "get_started" in profile:
        _get_started_validate(value=profile["get_started"])
    if "greeting" in profile:
        _greeting_validate(value=profile["greeting"])
    if "ice_breakers" in profile:
        _ice_breakers_validate(value=profile["ice_breakers"])
    if "persistent_menu" in profile:
        if "get_started" not in profile:
            raise ProfileError(
                "a persistent_menu needs get_started: Meta shows the menu only with a Get Started button"
            )
        _persistent_menu_validate(value=profile["persistent_menu"])


def messenger_profile_describe(*, profile: dict[str, Any]) -> list[str]:
    """`profile` (as Graph returns it) as lines for a person; tolerant of whatever Graph sends."""
    get_started = profile.get("get_started")
    payload = get_started.get("payload") if isinstance(get_started, dict) else None
    lines = [f"Get started: {payload}" if payload else "Get started: not set"]
    greetings = _dicts(profile.get("greeting"))
    lines.append("Greeting:" if greetings else "Greeting: not set")
    lines += [f"  {greeting.get('locale')}: {greeting.get('text')}" for greeting in greetings]
    lines += _groups_describe(
        title="Ice breakers",
        groups=_ice_breaker_groups(value=profile.get("ice_breakers")),
        item_line=lambda item: f"{item.get('question')} → {item.get('payload')}",
    )
    lines += _groups_describe(
        title="Persistent menu",
        groups=_dicts(profile.get("persistent_menu")),
        item_line=lambda item: (
            f"{item.get('title')} → {item.get('payload') or item.get('url') or item.get('type')}"
        ),
    )
    return lines


def messenger_profile_summarize(*, profile: dict[str, Any]) -> str:
    """What a (valid) profile sets, in a few words: `get started (GET_STARTED), 3 ice breakers, ...`."""
    parts = []
    if "get_started" in profile:
        parts.append(f"get started ({profile['get_started']['payload']})")
    if "greeting" in profile:
        parts.append("greeting" if len(profile["greeting"]) == 1 else f"{len(profile['greeting'])} greetings")
    if "ice_breakers" in profile:
        groups = _ice_breaker_groups(value=profile["ice_breakers"])
        parts.append(_count(sum(len(group["call_to_actions"]) for group in groups), "ice breaker"))
    if "persistent_menu" in profile:
        items = sum(len(menu["call_to_actions"]) for menu in profile["persistent_menu"])
        parts.append(f"persistent menu ({_count(items, 'item')})")
    return ", ".join(parts)


# --- validation ------------------------------------------------------------------------------


def _get_started_validate(*, value: Any) -> None:
    if not isinstance(value, dict) or set(value) != {"payload"}:
        raise ProfileError('get_started must be an object {"payload": "..."}')
    _text_get(item=value, key="payload", where="get_started")


def _greeting_validate(*, value: Any) -> None:
    for greeting in _locale_objects(value=value, where="greeting", shape="{locale, text}"):
        where = f"greeting ({greeting['locale']})"
        text = _text_get(item=greeting, key="text", where=where)
        if len(text) > GREETING_MAX_CHARS:
            raise ProfileError(f"{where}: {len(text)} characters; Meta allows at most {GREETING_MAX_CHARS}")


def _ice_breakers_validate(*, value: Any) -> None:
    if _ice_breakers_older_format(value=value):
        # Meta still takes a plain list of questions, for every locale.
        value = [{"locale": DEFAULT_LOCALE, "call_to_actions": value}]
    for group in _locale_objects(value=value, where="ice_breakers", shape="{locale, call_to_actions}"):
        where = f"ice_breakers ({group['locale']})"
        questions = _objects(
            value=group.get("call_to_actions"), where=f"{where}: call_to_actions", shape="{question, payload}"
        )
        if len(questions) > ICE_BREAKERS_MAX:
            raise ProfileError(f"{where}: {len(questions)} questions; Meta allows at most {ICE_BREAKERS_MAX}")
        for question in questions:
            _text_get(item=question, key="question", where=where)
            _text_get(item=question, key="payload", where=where)


def _persistent_menu_validate(*, value: Any) -> None:
    for menu in _locale_objects(value=value, where="persistent_menu", shape="{locale, call_to_actions}"):
        where = f"persistent_menu ({menu['locale']})"
        if not isinstance(menu.get("composer_input_disabled", False), bool):
            raise ProfileError(f"{where}: composer_input_disabled must be true or false")
        items = _objects(
            value=menu.get("call_to_actions"), where=f"{where}: call_to_actions", shape="menu item"
        )
        if len(items) > MENU_ITEMS_MAX:
            raise ProfileError(f"{where}: {len(items)} items; Meta allows at most {MENU_ITEMS_MAX}")
        for item in items:
            _menu_item_validate(item=item, where=where)


def _menu_item_validate(*, item: dict[str, Any], where: str) -> None:
    title = _text_get(item=item, key="title", where=where)
    if len(title) > MENU_TITLE_MAX_CHARS:
        raise ProfileError(
            f"{where}: the title {title!r} is {len(title)} characters; Meta allows at most {MENU_TITLE_MAX_CHARS}"
        )
    kind = item.get("type")
    if kind not in MENU_ITEM_TYPES:
        raise ProfileError(
            f"{where}: {title!r} has type {kind!r}; a menu item is one of {', '.join(MENU_ITEM_TYPES)}"
        )
    _text_get(item=item, key="payload" if kind == "postback" else "url", where=f"{where}: {title!r}")


def _locale_objects(*, value: Any, where: str, shape: str) -> list[dict[str, Any]]:
    """`value` as a list of objects with a locale each, one of them the default."""
    objects = _objects(value=value, where=where, shape=shape)
    locales = [_text_get(item=item, key="locale", where=where) for item in objects]
    if DEFAULT_LOCALE not in locales:
        raise ProfileError(f'{where} needs an entry with "locale": "{DEFAULT_LOCALE}"')
    return objects


def _objects(*, value: Any, where: str, shape: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value or not all(isinstance(item, dict) for item in value):
        raise ProfileError(f"{where} must be a non-empty list of {shape} objects")
    return value


def _text_get(*, item: dict[str, Any], key: str, where: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ProfileError(f"{where}: {key} must be a non-empty text")
    return value


def _json_type(value: Any) -> str:
    names = {list: "a list", str: "a string", bool: "true or false", int: "a number", float: "a number"}
    return names.get(type(value), "null")


# --- description -----------------------------------------------------------------------------


def _groups_describe(*, title: str, groups: list[dict[str, Any]], item_line: Any) -> list[str]:
    """`title`, then per locale its items, one line each by `item_line`."""
    if not groups:
        return [f"{title}: not set"]
    lines = [f"{title}:"]
    for group in groups:
        lines.append(f"  {group.get('locale')}:")
        lines += [f"    {item_line(item)}" for item in _dicts(group.get("call_to_actions"))]
    return lines


def _ice_breakers_older_format(*, value: Any) -> bool:
    """Whether `value` is ice breakers in Meta's older format: `[{question, payload}, ...]`."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and not {"call_to_actions", "locale"} & item.keys() for item in value)
    )


def _ice_breaker_groups(*, value: Any) -> list[dict[str, Any]]:
    """Ice breakers per locale; ones set in Meta's older format (a plain list of questions) come back
    as such and are shown as the default locale's."""
    groups = _dicts(value)
    plain = [group for group in groups if "call_to_actions" not in group]
    localized = [group for group in groups if "call_to_actions" in group]
    return localized + ([{"locale": DEFAULT_LOCALE, "call_to_actions": plain}] if plain else [])


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
