"""Review labels at keyboard speed: one image at a time, or a grid with a cursor.

`review_keys` draws a Streamlit custom component (components v2; its frontend is
``app_pages/_review_keys/widget.mjs`` and ``widget.css``) and returns what the reviewer did
since the last call. A module of app_pages/ whose name starts with ``_`` is not a page.

The contract
------------
**Data in.** Python passes the images to review (``tiles``, in review order) and the
classes (names with their fixed colours). The widget computes the keyboard shortcuts
from the class names (rules below and under ``?`` in the widget).

**The widget acts locally.** A key press relabels, confirms or undoes on screen and
moves the cursor at once: every tile, its thumbnail and its neighbours are already in
the browser. Nothing waits for Python.

**Actions out: a cumulative, numbered log.** Each action gets the next number (``seq``,
1, 2, 3, … and never reused, also across remounts: the widget starts above ``floor``,
which Python sends). The widget keeps every action Python may not have taken yet in its
component state ``actions`` and sends the whole log after each action. Streamlit may
coalesce reruns (a newer state replaces an older one before Python runs): no action is
lost, since the newer log holds the older actions too. This module remembers, per
``key`` in ``st.session_state``, the highest ``seq`` it has handed out, and hands out
only the actions above it, each exactly once, in order.

**Tiles reflect what was handed out.** The tiles of a call must show every action handed
out *before* that call (the Review page writes them to the store before it builds the
next tiles). The widget is told that number (``applied``) and shows its later actions
on top of the labels it receives, so a rerun never flips a tag back; it then drops
those older actions from its log.

**The cursor stays on its image.** When new tiles come (the next page, or a window
that slides with the cursor), the cursor stays on the same image id if it is still
there; after a ``page`` request it goes to the first (next page) or last (previous
page) image, or one step on when the old image is still present.

Actions
-------
Every action is a dict with all of these keys:

``seq`` (int)
    Its number in the log, from 1, increasing.
``kind`` (str)
    ``"assign"``: the images get class ``label``. ``"confirm"``: their label is right as
    shown (the Review page stores it as a ``confirmed`` seed). ``"undo"``: the action
    numbered ``undoes`` is undone; the widget already shows the images as before it.
    ``"page"``: the reviewer went past the last (``direction`` +1) or before the first
    (``direction`` -1) image; send the next or previous images.
``ids`` (list of int)
    The images it is about (undo: those of the undone action; page: none).
``label`` (str or None)
    assign: the class given. None otherwise.
``previous`` (list of str or None)
    For each id, the label the reviewer saw before this action (None: not labeled).
``undoes`` (int or None), ``undone`` (dict or None)
    undo: the seq of the undone action, and that action's ``kind``, ``label``,
    ``previous`` and ``previous_confirmed`` (whether each image was shown confirmed), so
    the undo can be carried out without looking anything up.
``direction`` (int or None)
    page: +1 or -1.
``cursor`` (int or None)
    The image id under the cursor after the action (auto-advance), for a page that
    slides its window with the reviewer.

Giving an image the class it already shows is logged as a confirm: it changes nothing
else.

Keys
----
Number keys: a class named by a single digit ("3") gets that digit; the other number keys
(1…9, 0) pick the other classes in order, ten classes in all. Letters: each class's shortest start (letters a–z of
its name, lower case, accents dropped) that starts no other class name; a shortcut acts
on its last letter, since none is the start of another. ``u`` is undo, so a name
starting with u (or one that is the start of another name, or has no letters) has no
letters: its number or ``/`` (search by name) picks it. Enter confirms; arrows move
(grid: by rows too); Shift+arrows, Shift+click select a range in the grid, Space and
Ctrl/Cmd+click toggle one image; ``u`` or Ctrl/Cmd+Z undo; PageDown/PageUp ask for the
next/previous images; Esc cancels; ``?`` shows all keys. After an assign or a confirm
the cursor moves to the next image.

Coalescing and interruptions
----------------------------
Pass ``on_actions`` to get the actions in a callback that runs before the page script
(and so before the page builds its tiles): nothing can interrupt it between handing out
and storing. Without it, store the returned actions straight after the call, before
any other Streamlit command (a newer rerun may stop the script at the next one).
Put the widget inside an ``st.fragment`` so that each action reruns the fragment only.

Testing a page with it
----------------------
In ``AppTest``, play the browser by setting ``at.session_state[key] = {"actions": [...]}``
(whole log, as above) before ``at.run()``. AppTest does not fire widget callbacks for
values set that way, so ``on_actions`` is then called from inside ``review_keys`` (after
the page built its tiles); in the browser it runs before the page script.
"""
from __future__ import annotations

import base64
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import streamlit as st

from app_pages._frontend import folder_component

COMPONENT_NAME = "hdl_studio_review_keys"
MODES = ("one", "grid")
KINDS = ("assign", "confirm", "undo", "page")
NEIGHBOURS = 5                 # nearest neighbours shown beside the image
GREY = "#8c8c8c"               # colour of a label that is not a class

_LOG = logging.getLogger(__name__)
_COLOUR = re.compile(r"^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|rgba?\(\s*\d{1,3}\s*,\s*\d{1,3}\s*,"
                     r"\s*\d{1,3}\s*(,\s*[0-9.]+\s*)?\))$")
_URL_STARTS = ("data:image/", "https://", "http://", "/", "app/static/")
_IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
                (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))

_component = folder_component(COMPONENT_NAME, "_review_keys", "widget",
                              html='<div class="rk"></div>')


# --------------------------------------------------------------------------- data in

def image_uri(image: bytes | str, *, where: str = "image") -> str:
    """What the browser loads for a picture: a data URI of its bytes, or the URL given.

    Bytes travel inside every rerun's data (a 96 px JPEG is ~4 KiB, a PNG of a photo
    ~25 KiB); a URL (``https://…``, or app-relative like ``/media/…`` or
    ``app/static/…``) is loaded once and cached by the browser.

    Parameters
    ----------
    image : bytes or str
        Encoded PNG, JPEG, GIF or WebP bytes (e.g. ``state.thumbnail_png(...)``), or a
        ``data:image/...`` URI or a URL as above, returned unchanged.
    where : str, default "image"
        Names the value in error messages (``"tiles[3].image"``).

    Returns
    -------
    str
        ``data:image/<type>;base64,...``.

    Examples
    --------
    >>> image_uri(b"\\x89PNG\\r\\n\\x1a\\n")[:22]
    'data:image/png;base64,'
    """
    if isinstance(image, str):
        if image.startswith(_URL_STARTS):
            return image
        raise ValueError(f"{where}: a string must be a data:image/... URI or an http(s)://, "
                         f"/… or app/static/… URL, got {image[:40]!r}; or pass the encoded "
                         "bytes (e.g. state.thumbnail_png(file))")
    if isinstance(image, (bytes, bytearray, memoryview)):
        raw = bytes(image)
        kind = next((mime for magic, mime in _IMAGE_TYPES if raw.startswith(magic)), None)
        if kind is None and raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
            kind = "image/webp"
        if kind is None:
            raise ValueError(f"{where}: {len(raw)} bytes that are not PNG, JPEG, GIF or WebP "
                             f"(they start {raw[:8]!r}); encode the image as PNG first")
        return f"data:{kind};base64,{base64.b64encode(raw).decode('ascii')}"
    raise TypeError(f"{where}: expected PNG/JPEG bytes or a data:image URI, "
                    f"got {type(image).__name__}")


def _int_id(value: Any, where: str) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise ValueError(f"{where}: an image id must be an int, got {value!r}")
    return int(value.__index__())


def _label(value: Any, where: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise ValueError(f"{where}: a label must be a str or None (not labeled), got {value!r}")


def _colour(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _COLOUR.match(value.strip()):
        raise ValueError(f"{where}: a colour must be '#rgb', '#rrggbb', 'rgb(r, g, b)' or "
                         f"'rgba(r, g, b, a)', got {value!r}")
    return value.strip()


def _class_list(classes: Mapping[str, str] | Sequence) -> list[dict]:
    pairs = list(classes.items()) if isinstance(classes, Mapping) else list(classes)
    out, seen = [], set()
    for i, pair in enumerate(pairs):
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"classes[{i}]: expected a (name, colour) pair, got {pair!r}")
        name, colour = pair
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"classes[{i}]: a class name must be a non-empty str, got {name!r}")
        if name in seen:
            raise ValueError(f"classes[{i}]: the class {name!r} is listed twice")
        seen.add(name)
        out.append({"name": name, "colour": _colour(colour, f"classes[{i}] ({name!r})")})
    return out


def widget_data(tiles: Sequence[Mapping], classes: Mapping[str, str] | Sequence, *,
                mode: str = "one") -> dict:
    """Check the tiles and classes and turn them into the widget's JSON data.

    Pictures used more than once (a neighbour of several tiles) are sent once: tiles refer
    to them by their index in ``images``.

    Parameters
    ----------
    tiles : sequence of mappings
        See `review_keys`.
    classes : mapping of str to str, or sequence of (name, colour) pairs
        See `review_keys`.
    mode : {"one", "grid"}, default "one"

    Returns
    -------
    dict
        ``{"mode", "classes": [{"name", "colour"}], "images": [data URI],
        "tiles": [{"id", "image", "label", "colour", "confirmed", "name", "reason",
        "neighbours": [{"image", "label"}]}]}``.

    Raises
    ------
    ValueError
        Naming the tile, the field and the value that is wrong.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    class_list = _class_list(classes)
    colour_of = {c["name"]: c["colour"] for c in class_list}
    images: list[str] = []
    index_of: dict[str, int] = {}

    def picture(value: Any, where: str) -> int:
        uri = image_uri(value, where=where)
        if uri not in index_of:
            index_of[uri] = len(images)
            images.append(uri)
        return index_of[uri]

    out, ids = [], set()
    for i, tile in enumerate(tiles):
        where = f"tiles[{i}]"
        if not isinstance(tile, Mapping):
            raise ValueError(f"{where}: expected a mapping with id, image, label, …, "
                             f"got {type(tile).__name__}")
        missing = [k for k in ("id", "image", "label") if k not in tile]
        if missing:
            raise ValueError(f"{where}: missing {', '.join(missing)} (a tile needs id, image "
                             "and label; reason, neighbours, colour, confirmed, name are optional)")
        item = _int_id(tile["id"], f"{where}.id")
        if item in ids:
            raise ValueError(f"{where}: image id {item} is listed twice")
        ids.add(item)
        label = _label(tile["label"], f"{where}.label")
        neighbours = []
        for j, pair in enumerate(tile.get("neighbours") or ()):
            w = f"{where}.neighbours[{j}]"
            if isinstance(pair, Mapping):
                n_image, n_label = pair.get("image"), pair.get("label")
            elif isinstance(pair, Sequence) and not isinstance(pair, (str, bytes)) and len(pair) == 2:
                n_image, n_label = pair
            else:
                raise ValueError(f"{w}: expected an (image, label) pair, got {pair!r:.60}")
            neighbours.append({"image": picture(n_image, f"{w}.image"),
                               "label": _label(n_label, f"{w}.label")})
        if len(neighbours) > NEIGHBOURS:
            neighbours = neighbours[:NEIGHBOURS]
        colour = tile.get("colour")
        out.append({
            "id": item,
            "image": picture(tile["image"], f"{where}.image"),
            "label": label,
            "colour": _colour(colour, f"{where}.colour") if colour is not None
            else colour_of.get(label, GREY),
            "confirmed": bool(tile.get("confirmed", False)),
            "name": str(tile.get("name") or ""),
            "reason": str(tile.get("reason") or ""),
            "neighbours": neighbours,
        })
    return {"mode": mode, "classes": class_list, "images": images, "tiles": out}


# --------------------------------------------------------------------------- actions out

def _clean_action(entry: Any) -> dict | None:
    """One log entry as a plain action dict, or None when it is not one."""
    if not isinstance(entry, Mapping):
        return None
    seq, kind = entry.get("seq"), entry.get("kind")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1 or kind not in KINDS:
        return None
    try:
        ids = [int(i) for i in entry.get("ids") or []]
    except (TypeError, ValueError):
        return None

    def optional_int(name: str) -> int | None:
        value = entry.get(name)
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None

    undone = entry.get("undone")
    return {
        "seq": seq,
        "kind": kind,
        "ids": ids,
        "label": entry.get("label") if isinstance(entry.get("label"), str) else None,
        "previous": list(entry.get("previous") or []),
        "undoes": optional_int("undoes"),
        "undone": dict(undone) if isinstance(undone, Mapping) else None,
        "direction": optional_int("direction"),
        "cursor": optional_int("cursor"),
    }


def new_actions(log: Sequence | None, handed: int) -> tuple[list[dict], int]:
    """The actions of `log` not handed out yet, in order, and the new high-water mark.

    Parameters
    ----------
    log : sequence of dicts or None
        The widget's state ``actions``: every action it is not sure Python has, each
        with a ``seq``. Entries that are not actions are skipped (and logged).
    handed : int
        The highest ``seq`` handed out before.

    Returns
    -------
    (list of dict, int)
        The actions with ``seq > handed``, sorted by ``seq``, each once (a repeated
        ``seq`` keeps its last entry), and ``max(handed, their seqs)``.

    Examples
    --------
    >>> log = [{"seq": 1, "kind": "assign", "ids": [4], "label": "cat"},
    ...        {"seq": 2, "kind": "confirm", "ids": [5]}]
    >>> fresh, handed = new_actions(log, 1)
    >>> [a["seq"] for a in fresh], handed
    ([2], 2)
    """
    fresh: dict[int, dict] = {}
    for entry in log or ():
        action = _clean_action(entry)
        if action is None:
            _LOG.warning("review_keys: skipped a log entry that is not an action: %.200r", entry)
            continue
        if action["seq"] > handed:
            fresh[action["seq"]] = action
    ordered = [fresh[seq] for seq in sorted(fresh)]
    return ordered, max([handed, *fresh])


def _handed_key(key: str) -> str:
    """Where `review_keys` remembers the highest seq it handed out for widget `key`."""
    return f"_review_keys_handed.{key}"


def _log_now(key: str) -> list:
    """The widget's log as the browser last sent it (before the widget is drawn)."""
    try:
        value = st.session_state[key]
    except (KeyError, AttributeError):
        return []
    actions = value.get("actions") if isinstance(value, Mapping) else None
    return list(actions) if isinstance(actions, (list, tuple)) else []


def _hand_out(key: str) -> list[dict]:
    handed_key = _handed_key(key)
    fresh, handed = new_actions(_log_now(key), int(st.session_state.get(handed_key, 0)))
    st.session_state[handed_key] = handed
    return fresh


# --------------------------------------------------------------------------- the widget

def review_keys(tiles: Sequence[Mapping], classes: Mapping[str, str] | Sequence, *,
                mode: str = "one", key: str = "review_keys",
                on_actions: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Draw the keyboard review widget; return the reviewer's actions not returned before.

    Parameters
    ----------
    tiles : sequence of mappings
        The images to review, in order. Each has ``id`` (int, unique), ``image`` (PNG/JPEG
        bytes, a ``data:image`` URI or a URL; a small thumbnail, e.g. 96–256 px; see
        `image_uri`), ``label``
        (str, or None when not labeled) and optionally ``reason`` (one line shown under
        the image, e.g. "labeled in the last 2 % of rounds; 3 of 5 neighbours say 8"),
        ``neighbours`` (up to 5 ``(image, label)`` pairs, nearest first), ``name`` (a
        file name), ``confirmed`` (bool: shown with a check mark) and ``colour`` (for a
        label that is not one of `classes`). Tiles must show every action this function
        handed out before the call.
    classes : mapping of str to str, or sequence of (name, colour) pairs
        The classes in their fixed order (number keys pick the first ten) with their fixed
        colours ('#rrggbb', '#rgb', 'rgb(...)' or 'rgba(...)').
    mode : {"one", "grid"}, default "one"
        One large image with its 5 nearest neighbours, or a grid with a cursor.
    key : str, default "review_keys"
        The widget's key; one per widget on a page. Must not contain "__".
    on_actions : callable, optional
        Called with the new actions (a non-empty list) in a callback before the page
        script reruns, so the page can store them before it builds its tiles. When given,
        every action goes to it (from this call when the callback did not run) and the
        function returns an empty list.

    Returns
    -------
    list of dict
        New actions, oldest first (see the module docstring for their keys). Store them
        before any other Streamlit command.

    Raises
    ------
    ValueError
        When a tile, a class, the mode or the key is not as described (the message names
        it).
    """
    if not isinstance(key, str) or not key or "__" in key:
        raise ValueError(f"key must be a non-empty str without '__' (Streamlit reserves it "
                         f"in component ids), got {key!r}")
    data = widget_data(tiles, classes, mode=mode)
    handed_key = _handed_key(key)
    handed = int(st.session_state.get(handed_key, 0))
    # Tiles show every action handed out before this call; the widget shows later ones.
    data["applied"] = handed
    # A remounted widget must number above every action it sent before, seen or not.
    data["floor"] = max([handed, *(a["seq"] for a in new_actions(_log_now(key), handed)[0])])

    def _on_change() -> None:
        if on_actions is not None:
            fresh = _hand_out(key)
            if fresh:
                on_actions(fresh)

    result = _component(key=key, data=data, default={"actions": []},
                        on_actions_change=_on_change, width="stretch", height="content")
    fresh, st.session_state[handed_key] = new_actions(
        result.get("actions"), int(st.session_state.get(handed_key, 0)))
    if on_actions is not None:
        if fresh:               # the callback did not run (e.g. the widget's first run)
            on_actions(fresh)
        return []
    return fresh
