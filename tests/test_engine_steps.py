"""The engine as a customer meets it: bad input, global commands, limits from the files, recovery."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.complete_catalogs import write_complete_locales

from bot.channel import Command, Contact, Event, Press, Start, Text, Unsupported
from bot.engine import ActionResult, Dialogs, Frame, State, StepResult, load_dialogs, resume, step
from bot.i18n import Catalogs
from common.settings import REPO_ROOT

DIALOGS = REPO_ROOT / "dialogs"
MENU = ["update_contact", "marketing_opt_out", "erasure", "access", "status", "agent"]


@pytest.fixture(scope="module")
def catalogs(tmp_path_factory: pytest.TempPathFactory) -> Catalogs:
    return Catalogs.load(write_complete_locales(DIALOGS, tmp_path_factory.mktemp("locales")))


@pytest.fixture(scope="module")
def dialogs() -> Dialogs:
    return load_dialogs(DIALOGS)


class Chat:
    """One customer talking to the engine; keeps the state as the conversation store would."""

    def __init__(self, dialogs: Dialogs, catalogs: Catalogs) -> None:
        self.dialogs = dialogs
        self.catalogs = catalogs
        self.state = State()
        self.last = StepResult(state=self.state)

    def send(self, event: Event | ActionResult) -> StepResult:
        # Through JSON every time, as the store keeps it.
        stored = json.dumps(self.state.to_json())
        self.last = step(self.dialogs, State.from_json(stored), event, self.catalogs)
        self.state = self.last.state
        if [a.name for a in self.last.actions] == ["verification_channels"]:
            # A backend with a mail server: the customer is asked where the code goes.
            said = self.last.messages
            self.send(ActionResult("verification_channels", "ok", {"email_codes": True}))
            self.last.messages[:0] = said
        return self.last

    @property
    def text(self) -> str:
        return "\n".join(m.text for m in self.last.messages)

    @property
    def buttons(self) -> list[str]:
        shown = [[i for row in m.options for i, _ in row] for m in self.last.messages if m.options]
        return shown[-1] if shown else []

    @property
    def at(self) -> tuple[str, str]:
        frame = self.state.frame
        assert frame is not None
        return frame.flow, frame.step

    def verified_into(self, journey: str) -> None:
        """/start, pick ``journey``, and pass verification."""
        self.send(Start("en"))
        self.send(Press(journey))
        self.send(Contact("+37120000001", own=True))
        self.send(Press("sms"))
        self.send(ActionResult("start_verification", "sent"))
        self.send(Text("123456"))
        self.send(ActionResult("check_code", "verified"))


@pytest.fixture
def chat(dialogs: Dialogs, catalogs: Catalogs) -> Chat:
    return Chat(dialogs, catalogs)


def _copy_dialogs(tmp_path: Path) -> Path:
    folder = tmp_path / "dialogs"
    shutil.copytree(DIALOGS, folder, ignore=shutil.ignore_patterns("tests"))
    return folder


def test_the_engine_leaves_the_state_it_was_given_alone(chat: Chat) -> None:
    chat.send(Start("en"))
    before = chat.state.to_json()
    result = step(chat.dialogs, chat.state, Press("erasure"), chat.catalogs)
    assert chat.state.to_json() == before
    assert result.state.to_json() != before


def test_start_greets_in_the_platform_language_and_shows_the_menu(chat: Chat) -> None:
    chat.send(Start("ru-RU"))
    assert chat.state.locale == "ru"
    assert "Hello!" in chat.text
    assert chat.buttons == MENU


BAD_INPUT: list[tuple[Event, str]] = [
    (Text(""), "Your message was empty"),
    (Text("   \n "), "Your message was empty"),
    (Text("x" * 4097), "That message is too long"),
    (Text("abc\x00\x01def"), "I couldn't read that message"),
    (Text("😀🎉👍🏽"), "emoji on their own"),
    (Unsupported("sticker"), "I can only read text messages"),
    (Unsupported("photo"), "I can only read text messages"),
    (Press("transactions"), "That button belongs to an earlier question"),
]


@pytest.mark.parametrize(("event", "answer"), BAD_INPUT, ids=lambda v: str(v)[:30])
def test_input_the_bot_cannot_use_is_answered_and_the_question_asked_again(
    chat: Chat, event: Event, answer: str
) -> None:
    chat.send(Start("en"))
    chat.send(Press("marketing_opt_out"))
    chat.send(Contact("+37120000001", own=True))
    where, values = chat.at, dict(chat.state.vars)
    chat.send(event)
    assert answer in chat.text
    assert "Where should I send your one-time code?" in chat.text
    assert chat.buttons == ["sms", "email"]
    assert chat.at == where
    assert chat.state.vars == values
    assert chat.last.actions == []


def test_a_long_message_just_within_the_limit_is_read(chat: Chat) -> None:
    chat.send(Start("en"))
    chat.send(Press("erasure"))
    chat.send(Text("1" * 4096))
    assert "That doesn't look like a phone number" in chat.text


def test_a_code_is_deleted_from_the_chat_even_when_it_is_wrong(chat: Chat) -> None:
    chat.send(Start("en"))
    chat.send(Press("erasure"))
    chat.send(Text("+37120000001"))
    chat.send(Press("sms"))
    chat.send(ActionResult("start_verification", "sent"))
    assert chat.send(Text("12 34")).delete_input
    assert "The code is 6 digits" in chat.text
    assert chat.send(Text("123456")).delete_input
    assert [a.name for a in chat.last.actions] == ["check_code"]
    assert not chat.send(
        ActionResult("check_code", "wrong_code", {"attempts_left": 3})
    ).delete_input


def test_someone_elses_contact_is_refused_and_an_unasked_one_is_not_used(chat: Chat) -> None:
    chat.send(Start("en"))
    chat.send(Contact("+37120000001", own=True))
    assert "I don't need a phone number right now" in chat.text
    chat.send(Press("erasure"))
    chat.send(Contact("+37120000009", own=False))
    assert "Please share your own phone number" in chat.text
    assert chat.at == ("verify", "ask_phone")


def test_three_unusable_answers_offer_a_person_without_queueing_the_chat(chat: Chat) -> None:
    chat.send(Start("en"))
    chat.send(Press("erasure"))
    assert chat.send(Text("one")).escalate is None
    assert chat.send(Text("two")).escalate is None
    third = chat.send(Text("three"))
    assert (third.escalate, third.actions) == (None, [])
    assert "Would you like to talk to a person?" in chat.text
    assert next([i for row in m.options for i, _ in row] for m in chat.last.messages) == ["agent"]
    chat.send(Press("agent"))
    assert [(a.name, a.args) for a in chat.last.actions] == [
        ("escalate", {"reason": "misunderstanding"})
    ]


def test_max_tries_is_read_from_the_dialog_file(tmp_path: Path, catalogs: Catalogs) -> None:
    folder = _copy_dialogs(tmp_path)
    verify = folder / "verify.yaml"
    verify.write_text(
        verify.read_text().replace(
            "validator: phone\n", "validator: phone\n          max_tries: 2\n", 1
        )
    )
    chat = Chat(load_dialogs(folder), catalogs)
    chat.send(Start("en"))
    chat.send(Press("erasure"))
    chat.send(Text("one"))
    assert "Would you like to talk to a person?" not in chat.text
    chat.send(Text("two"))
    assert "Would you like to talk to a person?" in chat.text


def test_a_product_team_adds_a_menu_option_without_python(
    tmp_path: Path, catalogs: Catalogs
) -> None:
    folder = _copy_dialogs(tmp_path)
    start = folder / "start.yaml"
    start.write_text(
        start.read_text().replace(
            "            - id: agent\n",
            "            - id: my_requests\n"
            '              label: "Where is my request?"\n'
            "              goto: status\n"
            "            - id: agent\n",
            1,
        )
    )
    chat = Chat(load_dialogs(folder), catalogs)
    chat.send(Start("en"))
    assert chat.buttons == [*MENU[:5], "my_requests", "agent"]
    chat.verified_into("my_requests")
    assert [a.name for a in chat.last.actions] == ["list_requests"]


def test_cancel_goes_back_to_the_menu_and_forgets_the_journey(chat: Chat) -> None:
    chat.verified_into("erasure")
    chat.send(Press("all"))
    chat.send(ActionResult("preview_erasure", "ok", {"preview_id": "pv_1", "categories": []}))
    chat.send(Command("cancel"))
    assert "Stopped. Nothing has been sent." in chat.text
    assert chat.buttons == MENU
    assert chat.state.vars == {}
    assert chat.state.verified  # still the same customer for the next journey


def test_back_asks_the_previous_question_again(chat: Chat) -> None:
    chat.send(Start("en"))
    chat.send(Press("erasure"))
    chat.send(Contact("+37120000001", own=True))
    assert chat.at == ("verify", "ask_channel")
    chat.send(Command("back"))
    assert chat.at == ("verify", "ask_phone")
    assert "First I need to check it's really you" in chat.text
    chat.send(Command("back"))
    assert chat.at == ("start", "menu")
    chat.send(Command("back"))
    assert "There's no earlier step to go back to." in chat.text


def test_help_language_and_status_work_in_the_middle_of_a_question(chat: Chat) -> None:
    chat.send(Start("en"))
    chat.send(Press("erasure"))
    chat.send(Command("help"))
    assert "/cancel to stop" in chat.text
    assert chat.at == ("verify", "ask_phone")
    chat.send(Command("language"))
    assert chat.buttons == ["en", "lv", "ru", "zh_Hans", "zh_Hant"]
    chat.send(Command("language"))  # asked twice: still one language menu
    chat.send(Press("zh_Hant"))
    assert chat.state.locale == "zh_Hant"
    assert chat.state.locale_chosen
    assert chat.at == ("verify", "ask_phone")
    chat.send(Start("en"))  # the platform's language no longer wins
    assert chat.state.locale == "zh_Hant"
    chat.send(Press("erasure"))
    # /status needs a verified chat: it asks for the phone first, and lists after.
    chat.send(Command("status"))
    assert [f.flow for f in chat.state.stack] == ["erasure", "verify", "status", "verify"]
    assert chat.at == ("verify", "ask_phone")
    assert [a.name for a in chat.last.actions] == []


def test_a_late_or_repeated_action_result_changes_nothing(chat: Chat) -> None:
    chat.verified_into("status")
    chat.send(ActionResult("list_requests", "ok", {"requests": []}))
    before = chat.state.to_json()
    chat.send(ActionResult("list_requests", "ok", {"requests": []}))
    assert chat.last.messages == []
    assert chat.state.to_json() == before


def test_a_lost_action_result_is_asked_for_again(chat: Chat) -> None:
    chat.send(Start("en"))
    first = chat.send(Press("status")).actions
    again = chat.send(Text("hello?")).actions
    assert again == first


def test_confirm_pressed_twice_submits_once(chat: Chat) -> None:
    chat.verified_into("marketing_opt_out")
    chat.send(ActionResult("load_profile", "ok", {"marketing": {"email": True}}))
    chat.send(Press("email"))
    assert [a.name for a in chat.send(Press("yes")).actions] == ["submit_request"]
    assert chat.send(Press("yes")).actions[0] == chat.last.actions[0]  # the same call, re-issued
    chat.send(
        ActionResult(
            "submit_request", "submitted", {"reference": "DD-7K2Q9M", "due_date": "2026-12-22"}
        )
    )
    chat.send(Press("yes"))
    assert chat.last.actions == []
    assert "That button belongs to an earlier question" in chat.text


def test_a_session_that_expired_unverifies_the_chat(chat: Chat) -> None:
    chat.verified_into("update_contact")
    chat.send(ActionResult("load_profile", "session_expired"))
    assert not chat.state.verified
    assert chat.at == ("verify", "ask_phone")


def test_a_state_left_by_older_dialogs_starts_again_from_the_menu(chat: Chat) -> None:
    chat.send(Start("en"))
    chat.state.stack = [Frame("erasure", "a_step_that_was_removed")]
    chat.send(Text("hello"))
    assert "Sorry, something went wrong on my side" in chat.text
    assert chat.buttons == MENU


def test_a_flow_that_never_asks_is_stopped(tmp_path: Path, catalogs: Catalogs) -> None:
    folder = _copy_dialogs(tmp_path)
    (folder / "loop.yaml").write_text(
        "flows:\n  loop:\n    steps:\n      - id: again\n        goto: loop\n"
    )
    start = folder / "start.yaml"
    start.write_text(start.read_text().replace("goto: status", "goto: loop", 1))
    chat = Chat(load_dialogs(folder), catalogs)
    chat.send(Start("en"))
    chat.send(Press("status"))
    assert "Sorry, something went wrong on my side" in chat.text
    assert chat.buttons == MENU


def test_resume_asks_the_current_question_again(chat: Chat) -> None:
    chat.send(Start("en"))
    chat.send(Press("erasure"))
    again = resume(chat.dialogs, chat.state, chat.catalogs)
    assert "First I need to check it's really you" in again.messages[-1].text
    home = resume(chat.dialogs, chat.state, chat.catalogs, menu=True)
    assert [i for row in home.messages[-1].options for i, _ in row] == MENU


def test_after_the_agent_leaves_a_waiting_chat_goes_on_where_the_customer_asked(
    chat: Chat,
) -> None:
    chat.send(Start("en"))
    chat.send(Press("erasure"))
    chat.send(Command("agent"))
    chat.send(ActionResult("escalate", "ok", {}))
    assert chat.buttons == ["stop_waiting"]
    back = resume(chat.dialogs, chat.state, chat.catalogs)
    assert "First I need to check it's really you" in back.messages[-1].text
    assert back.state.stack[-1].flow == "verify"


def test_end_dates_in_the_preview_are_written_the_customers_way(chat: Chat) -> None:
    chat.verified_into("erasure")
    chat.send(Command("language"))
    chat.send(Press("lv"))
    chat.send(Press("all"))
    preview = {
        "preview_id": "pv_1",
        "categories": [
            {
                "category": "transactions",
                "action": "keep",
                "basis": "eu_aml_records",
                "until": "2029-06-30",
            }
        ],
    }
    chat.send(ActionResult("preview_erasure", "ok", preview))
    assert "2029. gada 30. jūnijs" in chat.text


def _walk(chat: Chat) -> Iterator[StepResult]:
    yield chat.send(Start("en"))
    yield chat.send(Press("update_contact"))


def test_a_state_read_back_from_json_carries_on_where_it_was(chat: Chat) -> None:
    list(_walk(chat))
    revived = State.from_json(json.dumps(chat.state.to_json()))
    assert revived == chat.state
    assert State.from_json({"locale": "lv", "unknown_field": 1}).locale == "lv"


def test_categories_are_ticked_one_by_one_and_sent_together(chat: Chat) -> None:
    chat.verified_into("erasure")
    chat.send(Press("several"))
    chat.send(Press("transactions"))
    chat.send(Text("Chat history"))  # typing a label ticks it too
    assert "Chosen so far: Chat history and Transactions." in chat.text
    assert chat.last.actions == []
    chat.send(Press("transactions"))  # pressed again: unticked
    chat.send(Press("done"))
    assert [(a.name, a.args) for a in chat.last.actions] == [
        ("preview_erasure", {"scope": ["chat_history"]})
    ]


def test_done_with_nothing_ticked_asks_for_a_choice(chat: Chat) -> None:
    chat.verified_into("erasure")
    chat.send(Press("several"))
    chat.send(Press("done"))
    assert "Please choose at least one, then press Done choosing." in chat.text
    assert chat.last.actions == []
    chat.send(Command("back"))
    chat.send(Press("identity"))  # one category goes on at once
    assert [(a.name, a.args) for a in chat.last.actions] == [
        ("preview_erasure", {"scope": ["identity"]})
    ]


def test_a_journey_offered_mid_way_is_taken_after_the_state_is_stored(chat: Chat) -> None:
    chat.verified_into("marketing_opt_out")
    chat.send(ActionResult("load_profile", "ok", {"marketing": {"email": True}}))
    assert chat.buttons == ["email", "all"]  # only channels still on
    chat.send(Text("actually, please delete my data"))
    assert chat.buttons == ["erasure"]
    assert chat.text == "Did you mean this?"
    chat.send(Press("erasure"))
    # The marketing journey is left; the customer stays verified, so no second code.
    assert chat.at == ("erasure", "ask_scope")
    assert chat.state.verified
    assert chat.last.actions == []
    assert chat.buttons[0] == "all"


def test_without_phrasings_typed_text_at_the_menu_asks_for_a_button(
    tmp_path: Path, catalogs: Catalogs
) -> None:
    folder = _copy_dialogs(tmp_path)
    for path in folder.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        path.write_text(text.split("\n# Free text:")[0] + "\n", encoding="utf-8")
    chat = Chat(load_dialogs(folder), catalogs)
    chat.send(Start("en"))
    chat.send(Text("delete my data"))
    assert chat.text.startswith("Please choose one of the buttons.")
    assert chat.buttons == MENU
