"""Whatever a customer (or a confused backend) sends, the engine answers and stays consistent."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.channel import Command, Contact, Event, Press, Start, Text, Unsupported
from bot.engine import ActionResult, State, load_dialogs, step
from bot.engine.registry import ACTIONS, GLOBAL_COMMANDS
from bot.i18n import Catalogs
from common.settings import REPO_ROOT

DIALOGS = load_dialogs(REPO_ROOT / "dialogs")
CATALOGS = Catalogs.load(REPO_ROOT / "locales")
OPTION_IDS = sorted(
    {o.id for f in DIALOGS.flows.values() for s in f.steps.values() for o in s.options}
)

texts = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "123456",
            "12 34 56",
            "+37120000001",
            "jā",
            "да",
            "是",
            "no",
            "😀",
            "\x00",
            "x" * 5000,
        ]
    ),
    st.sampled_from(
        ["anna@example.lv", "Brīvības iela 1, Rīga, LV-1010, LV", "Everything you can delete"]
    ),
    st.text(max_size=40),
)
customer: st.SearchStrategy[Event] = st.one_of(
    st.builds(Start, st.sampled_from([None, "lv", "ru-RU", "zh-TW", "pt-BR", "??"])),
    st.builds(Text, texts),
    st.builds(Press, st.sampled_from([*OPTION_IDS, "nonsense", "x" * 80])),
    st.builds(Contact, st.sampled_from(["+37120000001", "37120000001", "123"]), st.booleans()),
    st.builds(Command, st.sampled_from([*GLOBAL_COMMANDS, "unknown"])),
    st.builds(Unsupported, st.sampled_from(["sticker", "photo", "voice"])),
)
data = st.fixed_dictionaries(
    {},
    optional={
        "attempts_left": st.integers(-1, 5),
        "reference": st.just("DD-7K2Q9M"),
        "due_date": st.sampled_from(["2026-12-22", "not a date", ""]),
        "masked": st.just("+371 2••••••99"),
        "preview_id": st.just("pv_1"),
        "categories": st.lists(
            st.fixed_dictionaries(
                {
                    "category": st.sampled_from(["contact", "transactions", "nonsense"]),
                    "action": st.sampled_from(["erase", "keep"]),
                },
                optional={
                    "basis": st.sampled_from(["eu_aml_records", "made_up"]),
                    "until": st.sampled_from(["2029-06-30", None, 5]),
                },
            ),
            max_size=3,
        ),
        "requests": st.lists(
            st.fixed_dictionaries({"reference": st.just("DD-1"), "kind": st.just("erasure")}),
            max_size=2,
        ),
        "marketing": st.dictionaries(st.sampled_from(["email", "sms"]), st.booleans()),
        "phones": st.just("not a list"),
    },
)


def _result(state: State) -> st.SearchStrategy[ActionResult]:
    name = state.pending["name"] if state.pending else "check_code"
    outcomes = ACTIONS[name].outcomes if name in ACTIONS else ("ok",)
    return st.builds(ActionResult, st.just(name), st.sampled_from([*outcomes, "surprise"]), data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_sequence_of_events_leaves_a_consistent_conversation(draw: st.DataObject) -> None:
    state = State()
    for _ in range(25):
        if state.pending and draw.draw(st.booleans()):
            event: Event | ActionResult = draw.draw(_result(state))
        else:
            event = draw.draw(customer)
        result = step(DIALOGS, state, event, CATALOGS)
        state = State.from_json(json.loads(json.dumps(result.state.to_json())))
        frame = state.frame
        assert frame is not None
        current = DIALOGS.step(frame.flow, frame.step)
        if state.pending is None:
            assert current.kind == "ask"
            # Every turn is answered, except while the chat waits for a person:
            # then only the first message of the wait is acknowledged.
            assert (
                result.messages
                or isinstance(event, ActionResult)
                or (current.waits and state.wait_acknowledged)
            )
        else:
            assert current.kind == "action"
            assert current.action == state.pending["name"]
        assert all(m.text for m in result.messages)
