"""The evaluation tasks: small everyday coding requests on tiny throw-away Python projects.

Each task gives the workspace's files, the prompt a developer would type, a check of the result (the workspace
files, or the answer text when the task is a question) and a reference solution that the self-check runs to
prove the check can pass. Expected values are ones a model cannot guess without looking (port 48213, a function
called `tally_levy`), matched case-insensitively.
"""

from __future__ import annotations

import json
import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bench.agent_eval.checks import (
    Check,
    Solve,
    all_of,
    answer_mentions,
    chain,
    file_lacks,
    file_matches,
    pytest_passes,
    read,
    replace_in,
    report_failing_test,
    run_tests_after,
    say,
    script_prints,
    src,
    tested_by,
    unchanged,
    values,
    write,
)

Kind = Literal["answer", "create", "fix", "config", "rename", "write_test", "run_tests", "multi_step", "list", "search"]
KINDS: tuple[Kind, ...] = (
    "answer",
    "create",
    "fix",
    "config",
    "rename",
    "write_test",
    "run_tests",
    "multi_step",
    "list",
    "search",
)


@dataclass(frozen=True)
class Task:
    name: str
    kind: Kind
    files: dict[str, str]
    prompt: str
    check: Check
    solve: Solve


def prepare_workspace(task: Task, folder: Path) -> Path:
    """Write the task's files into `folder` and commit them to a new git repository (git_diff needs one)."""
    folder.mkdir(parents=True, exist_ok=True)
    for path, content in task.files.items():
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    identity = ["-c", "user.name=agent-eval", "-c", "user.email=agent-eval@example.invalid"]
    for argv in (["init", "-q"], ["add", "-A"], [*identity, "commit", "-q", "-m", "task files"]):
        subprocess.run(["git", *argv], cwd=folder, check=True, capture_output=True, timeout=30)
    return folder


# answer: a question whose answer is in a file


ANSWER_TASKS = [
    Task(
        "answer_port",
        "answer",
        {
            "config.py": src('''
                """Settings for the inventory web service."""

                HOST = "0.0.0.0"
                PORT = 48213
                DEBUG = False
                WORKERS = 3
            '''),
            "app.py": src("""
                from config import HOST, PORT


                def main():
                    print(f"serving on {HOST}:{PORT}")


                if __name__ == "__main__":
                    main()
            """),
        },
        "What port does config.py set?",
        answer_mentions(r"48[,._ ]?213"),
        say("config.py sets PORT = 48213."),
    ),
    Task(
        "answer_vat_function",
        "answer",
        {
            "billing.py": src('''
                """Invoice arithmetic."""


                def apply_discount(amount, percent):
                    return amount * (1 - percent / 100)


                def tally_levy(net):
                    """Return the VAT owed on a net amount (standard rate 21 %)."""
                    return round(net * 0.21, 2)


                def format_invoice(lines):
                    return "\\n".join(f"{name}: {price:.2f}" for name, price in lines)
            '''),
        },
        "Which function in billing.py computes the VAT?",
        answer_mentions(r"tally_levy"),
        say("`tally_levy(net)` computes the VAT."),
    ),
    Task(
        "answer_attempts",
        "answer",
        {
            "http_client.py": src("""
                import time
                import urllib.request

                ATTEMPTS = 11
                BACKOFF_S = 0.5


                def fetch(url):
                    for attempt in range(ATTEMPTS):
                        try:
                            with urllib.request.urlopen(url, timeout=5) as response:
                                return response.read()
                        except OSError:
                            time.sleep(BACKOFF_S * attempt)
                    raise RuntimeError(f"gave up on {url}")
            """),
        },
        "How many attempts does fetch() in http_client.py make before it gives up?",
        answer_mentions(r"\b11\b|\beleven\b"),
        say("fetch() tries 11 times (ATTEMPTS = 11)."),
    ),
    Task(
        "answer_timezone",
        "answer",
        {
            "settings.py": src("""
                import os

                TIMEZONE = os.environ.get("APP_TZ", "Pacific/Chatham")
                LOCALE = os.environ.get("APP_LOCALE", "en_NZ")
            """),
            "clock.py": src("""
                from datetime import datetime
                from zoneinfo import ZoneInfo

                from settings import TIMEZONE


                def now():
                    return datetime.now(ZoneInfo(TIMEZONE))
            """),
        },
        "Which timezone does settings.py use when APP_TZ is not set?",
        answer_mentions(r"chatham"),
        say("It falls back to Pacific/Chatham."),
    ),
    Task(
        "answer_greeting",
        "answer",
        {
            "greet.py": src('''
                def greet(name):
                    """Welcome a passenger."""
                    return f"Ahoy, {name}! Welcome aboard the Kestrel."
            '''),
        },
        "What does greet('Ada') in greet.py return?",
        answer_mentions(r"ahoy,?\s*ada", r"kestrel"),
        say("It returns 'Ahoy, Ada! Welcome aboard the Kestrel.'"),
    ),
]


# create: a new file


_SMALL_APP = src("""
    def main():
        print("todo app")


    if __name__ == "__main__":
        main()
""")


def _ignores_pycache(workspace: Path, answer: str) -> str | None:
    text = read(workspace, ".gitignore")
    if text is None:
        return ".gitignore was not created"
    patterns = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not any("__pycache__" in line and not line.startswith("!") for line in patterns):
        return ".gitignore has no __pycache__ pattern"
    return None


def _settings_json(workspace: Path, answer: str) -> str | None:
    text = read(workspace, "settings.json")
    if text is None:
        return "settings.json was not created"
    try:
        data = json.loads(text)
    except ValueError as exc:
        return f"settings.json is not valid JSON: {exc}"
    if not isinstance(data, dict) or data.get("port") != 5173 or data.get("debug") is not False:
        return f"settings.json holds {text.strip()[:80]!r}"
    return None


def _requirements(workspace: Path, answer: str) -> str | None:
    text = read(workspace, "requirements.txt")
    if text is None:
        return "requirements.txt was not created"
    names = {re.split(r"[\s<>=!~\[;]", line.strip(), maxsplit=1)[0].lower() for line in text.splitlines()}
    missing = {"requests", "click"} - names
    return f"requirements.txt lacks {', '.join(sorted(missing))}" if missing else None


CREATE_TASKS = [
    Task(
        "create_gitignore",
        "create",
        {"app.py": _SMALL_APP, "README.md": "# todo\n\nA tiny todo app.\n"},
        "Create a .gitignore that ignores __pycache__",
        _ignores_pycache,
        write(".gitignore", "__pycache__/\n"),
    ),
    Task(
        "create_hello",
        "create",
        {"README.md": "# orbit\n\nScripts for the Orbit 9 station.\n"},
        "Create hello.py that prints exactly: Hello, Orbit 9!",
        script_prints("hello.py", "Hello, Orbit 9!"),
        write("hello.py", 'print("Hello, Orbit 9!")\n'),
    ),
    Task(
        "create_settings_json",
        "create",
        {"app.py": _SMALL_APP},
        'Create settings.json with "port" set to 5173 and "debug" set to false.',
        _settings_json,
        write("settings.json", '{"port": 5173, "debug": false}\n'),
    ),
    Task(
        "create_requirements",
        "create",
        {
            "fetcher.py": src("""
                import click
                import requests


                @click.command()
                @click.argument("url")
                def main(url):
                    print(requests.get(url, timeout=10).status_code)
            """),
        },
        "Create requirements.txt listing requests and click, one per line.",
        _requirements,
        write("requirements.txt", "requests\nclick\n"),
    ),
]


# fix: a one-line bug the prompt names


FIX_TASKS = [
    Task(
        "fix_add",
        "fix",
        {
            "calc.py": src("""
                def add(a, b):
                    return a - b


                def mul(a, b):
                    return a * b
            """),
        },
        "Fix the bug in add() in calc.py: it returns a - b, it should return a + b.",
        values("from calc import add, mul", [("add(2, 3)", 5), ("add(-1, 1)", 0), ("mul(4, 5)", 20)]),
        replace_in("calc.py", "return a - b", "return a + b"),
    ),
    Task(
        "fix_is_even",
        "fix",
        {
            "parity.py": src("""
                def is_even(n):
                    return n % 2 == 1


                def is_odd(n):
                    return not is_even(n)
            """),
        },
        "is_even() in parity.py returns True for odd numbers. Fix it.",
        values(
            "from parity import is_even, is_odd",
            [("is_even(4)", True), ("is_even(7)", False), ("is_even(0)", True), ("is_odd(7)", True)],
        ),
        replace_in("parity.py", "n % 2 == 1", "n % 2 == 0"),
    ),
    Task(
        "fix_average",
        "fix",
        {
            "stats.py": src("""
                def average(values):
                    if not values:
                        return 0.0
                    return sum(values) / (len(values) + 1)
            """),
        },
        "average() in stats.py divides by len(values) + 1; it should divide by len(values). Fix it.",
        values("from stats import average", [("average([2, 4, 6])", 4), ("average([5])", 5), ("average([])", 0)]),
        replace_in("stats.py", "(len(values) + 1)", "len(values)"),
    ),
    Task(
        "fix_shout",
        "fix",
        {
            "text.py": src('''
                def shout(text):
                    """The text in upper case followed by '!'."""
                    return text.lower() + "!"
            '''),
        },
        "shout() in text.py should return the text in upper case followed by '!', but it lower-cases it. Fix it.",
        values("from text import shout", [("shout('hi')", "HI!"), ("shout('Ok go')", "OK GO!")]),
        replace_in("text.py", "text.lower()", "text.upper()"),
    ),
    Task(
        "fix_countdown",
        "fix",
        {
            "timer.py": src("""
                def countdown(n):
                    return list(range(n, 0))
            """),
        },
        "countdown(3) in timer.py returns [] but should return [3, 2, 1]. Fix it.",
        values("from timer import countdown", [("countdown(3)", [3, 2, 1]), ("countdown(1)", [1])]),
        replace_in("timer.py", "range(n, 0)", "range(n, 0, -1)"),
    ),
]


# config: change one value in a config file, leave the rest


def _json_settings(workspace: Path, answer: str) -> str | None:
    try:
        data = json.loads(read(workspace, "settings.json") or "")
    except ValueError as exc:
        return f"settings.json is not valid JSON: {exc}"
    expected = {"debug": False, "log_level": "info", "workers": 4}
    got = {key: data.get(key) for key in expected} if isinstance(data, dict) else data
    return None if got == expected else f"settings.json holds {got}, expected {expected}"


def _toml_version(workspace: Path, answer: str) -> str | None:
    try:
        project = tomllib.loads(read(workspace, "pyproject.toml") or "").get("project", {})
    except tomllib.TOMLDecodeError as exc:
        return f"pyproject.toml is not valid TOML: {exc}"
    if project.get("version") != "0.4.0":
        return f"version is {project.get('version')!r}, expected '0.4.0'"
    if project.get("name") != "ledgerly":
        return f"name changed to {project.get('name')!r}"
    return None


def _dotenv(workspace: Path, answer: str) -> str | None:
    entries = {}
    for line in (read(workspace, ".env") or "").splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.lstrip().startswith("#"):
            entries[key.strip()] = value.strip().strip("\"'")
    expected = {"APP_NAME": "ledgerly", "REQUEST_TIMEOUT": "45", "CACHE_DIR": "/tmp/ledgerly"}
    got = {key: entries.get(key) for key in expected}
    return None if got == expected else f".env holds {got}, expected {expected}"


CONFIG_TASKS = [
    Task(
        "config_port",
        "config",
        {
            "config.py": src("""
                HOST = "127.0.0.1"
                PORT = 8080
                DEBUG = True
            """),
            "server.py": src("""
                from config import HOST, PORT

                print(f"listening on {HOST}:{PORT}")
            """),
        },
        "Change the port in config.py to 9342.",
        values("import config", [("config.PORT", 9342), ("config.HOST", "127.0.0.1"), ("config.DEBUG", True)]),
        replace_in("config.py", "PORT = 8080", "PORT = 9342"),
    ),
    Task(
        "config_json_debug",
        "config",
        {"settings.json": '{\n  "debug": true,\n  "log_level": "info",\n  "workers": 4\n}\n'},
        "Set debug to false in settings.json.",
        _json_settings,
        replace_in("settings.json", '"debug": true', '"debug": false'),
    ),
    Task(
        "config_toml_version",
        "config",
        {
            "pyproject.toml": src("""
                [project]
                name = "ledgerly"
                version = "0.3.1"
                requires-python = ">=3.11"
                dependencies = ["click>=8"]
            """),
            "ledgerly.py": 'print("ledgerly")\n',
        },
        "Bump the version in pyproject.toml to 0.4.0.",
        _toml_version,
        replace_in("pyproject.toml", '"0.3.1"', '"0.4.0"'),
    ),
    Task(
        "config_env_timeout",
        "config",
        {".env": "APP_NAME=ledgerly\nREQUEST_TIMEOUT=30\nCACHE_DIR=/tmp/ledgerly\n"},
        "Set REQUEST_TIMEOUT to 45 in .env.",
        _dotenv,
        replace_in(".env", "REQUEST_TIMEOUT=30", "REQUEST_TIMEOUT=45"),
    ),
]


# rename: a name used in two files


RENAME_TASKS = [
    Task(
        "rename_function",
        "rename",
        {
            "users.py": src("""
                def get_name(user):
                    return f"{user['first']} {user['last']}"
            """),
            "main.py": src("""
                from users import get_name

                print(get_name({"first": "Grace", "last": "Hopper"}))
            """),
        },
        "Rename the function get_name to fetch_name everywhere.",
        all_of(
            file_lacks("users.py", r"\bget_name\b"),
            file_lacks("main.py", r"\bget_name\b"),
            file_matches("users.py", r"def fetch_name\s*\("),
            script_prints("main.py", "Grace Hopper"),
        ),
        chain(replace_in("users.py", "get_name", "fetch_name"), replace_in("main.py", "get_name", "fetch_name")),
    ),
    Task(
        "rename_class",
        "rename",
        {
            "shapes.py": src("""
                class Box:
                    def __init__(self, width, height, depth):
                        self.width, self.height, self.depth = width, height, depth

                    def volume(self):
                        return self.width * self.height * self.depth
            """),
            "app.py": src("""
                from shapes import Box

                print("volume", Box(2, 3, 4).volume())
            """),
        },
        "Rename the class Box to Crate in shapes.py and app.py.",
        all_of(
            file_lacks("shapes.py", r"\bBox\b"),
            file_lacks("app.py", r"\bBox\b"),
            file_matches("shapes.py", r"class Crate\b"),
            script_prints("app.py", "volume 24"),
        ),
        chain(replace_in("shapes.py", "Box", "Crate"), replace_in("app.py", "Box", "Crate")),
    ),
    Task(
        "rename_constant",
        "rename",
        {
            "settings.py": "MAX_ITEMS = 50\n",
            "cart.py": src("""
                from settings import MAX_ITEMS


                def can_add(count):
                    return count < MAX_ITEMS
            """),
        },
        "Rename the constant MAX_ITEMS to CART_LIMIT everywhere.",
        all_of(
            file_lacks("settings.py", r"\bMAX_ITEMS\b"),
            file_lacks("cart.py", r"\bMAX_ITEMS\b"),
            values(
                "import cart, settings",
                [("settings.CART_LIMIT", 50), ("cart.can_add(49)", True), ("cart.can_add(50)", False)],
            ),
        ),
        chain(replace_in("settings.py", "MAX_ITEMS", "CART_LIMIT"), replace_in("cart.py", "MAX_ITEMS", "CART_LIMIT")),
    ),
]


# write_test: a pytest test that passes and catches a broken function


_PRICES_TESTS = src("""
    from prices import format_price


    def test_format_price_adds_currency():
        assert format_price(12.5) == "$12.50"
""")

WRITE_TEST_TASKS = [
    Task(
        "write_test_slugify",
        "write_test",
        {
            "text.py": src('''
                import re


                def slugify(title):
                    """'Hello, World!' -> 'hello-world'."""
                    words = re.findall(r"[a-z0-9]+", title.lower())
                    return "-".join(words)
            '''),
        },
        "Write a test for slugify in test_text.py",
        tested_by("test_text.py", "text.py", "slugify"),
        write(
            "test_text.py",
            src("""
                from text import slugify


                def test_slugify():
                    assert slugify("Hello, World!") == "hello-world"
            """),
        ),
    ),
    Task(
        "write_test_clamp",
        "write_test",
        {
            "mathx.py": src('''
                def clamp(value, low, high):
                    """value limited to the range [low, high]."""
                    return max(low, min(value, high))
            '''),
        },
        "Write a pytest test for clamp() in test_mathx.py",
        tested_by("test_mathx.py", "mathx.py", "clamp"),
        write(
            "test_mathx.py",
            src("""
                from mathx import clamp


                def test_clamp():
                    assert clamp(15, 0, 10) == 10
                    assert clamp(-3, 0, 10) == 0
                    assert clamp(4, 0, 10) == 4
            """),
        ),
    ),
    Task(
        "write_test_parse_price",
        "write_test",
        {
            "prices.py": src('''
                def parse_price(text):
                    """'$1,234.50' -> 1234.5"""
                    return float(text.replace("$", "").replace(",", ""))


                def format_price(amount):
                    return f"${amount:,.2f}"
            '''),
            "test_prices.py": _PRICES_TESTS,
        },
        "Add a test for parse_price to test_prices.py",
        all_of(
            file_matches("test_prices.py", r"def test_format_price_adds_currency\b"),
            tested_by("test_prices.py", "prices.py", "parse_price"),
        ),
        write(
            "test_prices.py",
            _PRICES_TESTS.replace("import format_price", "import format_price, parse_price")
            + src("""


                def test_parse_price():
                    assert parse_price("$1,234.50") == 1234.5
            """),
        ),
    ),
]


# run_tests: run the suite, name the one failing test


RUN_TESTS_TASKS = [
    Task(
        "run_tests_discount",
        "run_tests",
        {
            "shop.py": src("""
                def discounted(price, percent):
                    percent = min(percent, 50)
                    return round(price * (100 - percent) / 100, 2)
            """),
            "test_shop.py": src("""
                from shop import discounted


                def test_no_discount():
                    assert discounted(80, 0) == 80


                def test_ten_percent_off():
                    assert discounted(80, 10) == 72


                def test_discount_caps_at_half_price():
                    assert discounted(100, 80) == 20
            """),
        },
        "Run the tests and tell me which one fails.",
        answer_mentions(r"discount_caps_at_half_price"),
        report_failing_test(),
    ),
    Task(
        "run_tests_dates",
        "run_tests",
        {
            "dates.py": src("""
                from datetime import date


                def parse_day(text):
                    return date.fromisoformat(text)


                def week_number(text):
                    return parse_day(text).isocalendar()[1] + 1
            """),
            "test_dates.py": src("""
                from datetime import date

                from dates import parse_day, week_number


                def test_parse_day():
                    assert parse_day("2024-03-01") == date(2024, 3, 1)


                def test_week_number_of_new_year():
                    assert week_number("2024-01-03") == 1


                def test_parse_day_rejects_garbage():
                    try:
                        parse_day("soon")
                    except ValueError:
                        return
                    raise AssertionError("no ValueError")
            """),
        },
        "Run test_dates.py and tell me which test fails.",
        answer_mentions(r"week_number_of_new_year"),
        report_failing_test("test_dates.py"),
    ),
    Task(
        "run_tests_two_files",
        "run_tests",
        {
            "inventory.py": src("""
                def restock(stock, amount):
                    if amount < 0:
                        raise ValueError("amount must not be negative")
                    return stock + amount
            """),
            "orders.py": src("""
                SHIPPING = 4.99


                def order_total(prices):
                    return round(sum(prices), 2)
            """),
            "test_inventory.py": src("""
                import pytest

                from inventory import restock


                def test_restock_adds():
                    assert restock(3, 2) == 5


                def test_restock_rejects_negative():
                    with pytest.raises(ValueError):
                        restock(3, -1)
            """),
            "test_orders.py": src("""
                from orders import order_total


                def test_order_total_includes_shipping():
                    assert order_total([10.0, 5.0]) == 19.99


                def test_empty_order_total():
                    assert order_total([]) == 0
            """),
        },
        "Run the test suite and tell me the name of the failing test.",
        answer_mentions(r"order_total_includes_shipping"),
        report_failing_test(),
    ),
]


# multi_step: read, edit, run the tests


_CART_TESTS = src("""
    from cart import total


    def test_total_of_one_line():
        assert total([(2.5, 4)]) == 10.0


    def test_total_of_two_lines():
        assert total([(1.0, 3), (2.0, 1)]) == 5.0
""")

_STATS_TESTS = src("""
    from stats import mean, median


    def test_mean():
        assert mean([1, 2, 3]) == 2


    def test_median_odd():
        assert median([7, 1, 3]) == 3


    def test_median_even():
        assert median([4, 1, 3, 2]) == 2.5
""")

_MONEY_TESTS = src("""
    from money import format_price


    def test_format_whole():
        assert format_price(300) == "$3.00"


    def test_format_cents():
        assert format_price(350) == "$3.50"
""")

MULTI_STEP_TASKS = [
    Task(
        "multi_cart_total",
        "multi_step",
        {
            "cart.py": src('''
                def total(lines):
                    """lines: (unit price, quantity) pairs."""
                    return sum(price for price, quantity in lines)
            '''),
            "test_cart.py": _CART_TESTS,
        },
        "The tests in test_cart.py fail. Find the bug in cart.py, fix it, then run the tests to confirm they pass.",
        all_of(unchanged("test_cart.py", _CART_TESTS), pytest_passes("test_cart.py")),
        run_tests_after(replace_in("cart.py", "sum(price for", "sum(price * quantity for")),
    ),
    Task(
        "multi_median",
        "multi_step",
        {
            "stats.py": src("""
                def mean(values):
                    return sum(values) / len(values)
            """),
            "test_stats.py": _STATS_TESTS,
        },
        "Add a median(values) function to stats.py so that test_stats.py passes, then run the tests.",
        all_of(unchanged("test_stats.py", _STATS_TESTS), pytest_passes("test_stats.py")),
        run_tests_after(
            write(
                "stats.py",
                src("""
                    def mean(values):
                        return sum(values) / len(values)


                    def median(values):
                        ordered = sorted(values)
                        middle = len(ordered) // 2
                        if len(ordered) % 2:
                            return ordered[middle]
                        return (ordered[middle - 1] + ordered[middle]) / 2
                """),
            )
        ),
    ),
    Task(
        "multi_format_price",
        "multi_step",
        {
            "money.py": src("""
                def format_price(cents):
                    return f"${cents / 100:.1f}"
            """),
            "test_money.py": _MONEY_TESTS,
        },
        "Read test_money.py, change format_price in money.py so the tests pass, and run them.",
        all_of(unchanged("test_money.py", _MONEY_TESTS), pytest_passes("test_money.py")),
        run_tests_after(replace_in("money.py", ":.1f}", ":.2f}")),
    ),
]


# list and search: find things in the project


LIST_SEARCH_TASKS = [
    Task(
        "list_python_files",
        "list",
        {
            "app.py": "from storage.ledger_store import load\n\nprint(load())\n",
            "storage/ledger_store.py": "def load():\n    return []\n",
            "tools/csv_mangler.py": "def mangle(rows):\n    return rows[::-1]\n",
            "notes.md": "# notes\n\nNothing yet.\n",
            "data/sample.csv": "id,amount\n1,9.50\n",
        },
        "List the Python files in this project.",
        answer_mentions(r"ledger_store", r"csv_mangler", r"\bapp\.py"),
        say("app.py, storage/ledger_store.py and tools/csv_mangler.py."),
    ),
    Task(
        "search_todo",
        "search",
        {
            "api.py": "# TODO: add pagination\ndef list_users():\n    return []\n",
            "rates_loader.py": src("""
                import json


                def load_rates(path):
                    # TODO: cache the exchange rates instead of reading the file every time
                    with open(path) as fh:
                        return json.load(fh)
            """),
            "report.py": "# TODO: support PDF output\ndef render(rows):\n    return str(rows)\n",
        },
        "Which file has the TODO about caching the exchange rates?",
        answer_mentions(r"rates_loader"),
        say("rates_loader.py, in load_rates()."),
    ),
]


TASKS: list[Task] = [
    *ANSWER_TASKS,
    *CREATE_TASKS,
    *FIX_TASKS,
    *CONFIG_TASKS,
    *RENAME_TASKS,
    *WRITE_TEST_TASKS,
    *RUN_TESTS_TASKS,
    *MULTI_STEP_TASKS,
    *LIST_SEARCH_TASKS,
]
TASKS_BY_NAME: dict[str, Task] = {task.name: task for task in TASKS}
