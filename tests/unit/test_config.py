"""The customers and numbers configuration: parsed once into frozen values; each problem named by file, line, key."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ari_app.config.yaml_loader import load, parse
from ari_app.core.model import Config, Customer, Number
from rating.core.numbering import to_e164
from ari_app.errors import ConfigError
from rating.core.tariff import NumberType

VALID = """\
customers:
  - id: acme
    name: Acme BV
  - id: brussels-bakery
    name: Brussels Bakery SPRL
numbers:
  - number: "+31201234567"
    customer: acme
    type: local
    announcement: hello-world
  - number: "+3215123456"
    customer: brussels-bakery
    type: national
    announcement: custom/welcome_2
  - number: "+12025550100"
    customer: acme
    type: international
    announcement: hello-world
  - number: "+318001234567"
    customer: acme
    type: tollfree
    announcement: hello-world
  - number: "+319001234567"
    customer: brussels-bakery
    type: premium
    announcement: hello-world
"""

# The customer the numbers in the tables below belong to. It goes at the end of the
# file, so the line numbers of a table's `numbers:` text are those of the file.
ACME = "customers:\n  - id: acme\n    name: Acme BV\n"

# What every number needs besides itself; put after the key a case is about, so its line stays put.
BARE = "    customer: acme\n    type: local\n"  # for cases that give the announcement (or route) themselves
OWNED = BARE + "    announcement: hello-world\n"

TYPES = "local, national, international, tollfree, premium"


def with_acme(numbers: str) -> str:
    """A file with `numbers` text first and customer acme after it."""
    return numbers + ACME


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "fairline.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path) -> list[str]:
    """The problems `load` reports for `path` (the test fails if it reports none)."""
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def where(found: list[str]) -> list[list[str]]:
    """FILE:LINE and KEY of each problem, in the order reported."""
    return [p.split(": ", 2)[:2] for p in found]


class TestLoad:
    """A valid file becomes a frozen Config: customers by id, numbers by E.164."""

    def test_valid_file_gives_each_number_with_its_customer_type_and_announcement(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, VALID))

        assert dict(cfg.numbers) == {
            "+31201234567": Number("+31201234567", "acme", NumberType.LOCAL, "hello-world"),
            "+3215123456": Number("+3215123456", "brussels-bakery", NumberType.NATIONAL, "custom/welcome_2"),
            "+12025550100": Number("+12025550100", "acme", NumberType.INTERNATIONAL, "hello-world"),
            "+318001234567": Number("+318001234567", "acme", NumberType.TOLLFREE, "hello-world"),
            "+319001234567": Number("+319001234567", "brussels-bakery", NumberType.PREMIUM, "hello-world"),
        }

    def test_valid_file_gives_each_customer_by_id(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, VALID))

        assert dict(cfg.customers) == {
            "acme": Customer("acme", "Acme BV"),
            "brussels-bakery": Customer("brussels-bakery", "Brussels Bakery SPRL"),
        }

    def test_customer_name_is_kept_without_surrounding_spaces(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, 'customers:\n  - id: acme\n    name: "  Acme BV "\nnumbers: []\n'))

        assert cfg.customers["acme"].name == "Acme BV"

    def test_announcement_only_number_has_no_route(self, tmp_path: Path) -> None:
        """The number answers and plays its announcement: nothing to ring, at any time."""
        cfg = load(write(tmp_path, with_acme('numbers:\n  - number: "+31201234567"\n' + OWNED)))

        number = cfg.numbers["+31201234567"]
        assert (number.announcement, number.route, number.hours, number.international_forwarding) == (
            "hello-world", None, None, False)
        assert number.route_at(datetime(2026, 3, 2, 12, tzinfo=UTC)) is None

    def test_number_written_with_spaces_is_stored_in_e164(self, tmp_path: Path) -> None:
        cfg = load(write(tmp_path, with_acme('numbers:\n  - number: "+31 20 123 4567"\n' + OWNED)))

        assert list(cfg.numbers) == ["+31201234567"]

    def test_unquoted_number_with_plus_keeps_its_digits(self, tmp_path: Path) -> None:
        """YAML would read +31201234567 as an integer; the file's text is used, so nothing is lost."""
        cfg = load(write(tmp_path, with_acme("numbers:\n  - number: +31201234567\n" + OWNED)))

        assert list(cfg.numbers) == ["+31201234567"]

    def test_empty_lists_serve_no_number(self, tmp_path: Path) -> None:
        """Every call is then answered 'not in service'; valid, not an error."""
        cfg = load(write(tmp_path, "customers: []\nnumbers: []\n"))

        assert (dict(cfg.customers), dict(cfg.numbers)) == ({}, {})

    def test_customer_without_numbers_is_valid(self, tmp_path: Path) -> None:
        """A customer whose numbers are not live yet, or were all given back."""
        cfg = load(write(tmp_path, with_acme("numbers: []\n")))

        assert list(cfg.customers) == ["acme"]

    def test_loaded_config_cannot_be_changed(self, tmp_path: Path) -> None:
        """Parsed once: nothing downstream can add a number or a customer to a running config."""
        cfg = load(write(tmp_path, VALID))

        with pytest.raises(TypeError):
            cfg.numbers["+31209999999"] = Number(  # type: ignore[index]
                "+31209999999", "acme", NumberType.LOCAL, "beep")
        with pytest.raises(TypeError):
            cfg.customers["evil"] = Customer("evil", "Evil Corp")  # type: ignore[index]


def _number_problem_cases() -> list[Any]:
    """(file text, line, key, words the expectation contains) for problems in the numbers list."""
    return [
        pytest.param(with_acme("numbers: []\ncolour: red\n"), 2, "(top level).colour", "unknown key",
                     id="unknown-top-level-key"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    anouncement: beep\n' + OWNED), 3,
                     "numbers[0].anouncement", "unknown key; expected one of announcement, blocked_callers, blocked_with, closed, customer, hours, "
                     "international_forwarding, max_calls, number, outside_hours, recording, route, type",
                     id="unknown-key-in-a-number"),
        pytest.param(with_acme("numbers:\n  - number: 31201234567\n" + OWNED), 2, "numbers[0].number", "in quotes",
                     id="number-without-quotes-or-plus"),
        pytest.param(with_acme('numbers:\n  - number: "0201234567"\n' + OWNED), 2, "numbers[0].number", "E.164",
                     id="number-not-starting-with-plus"),
        pytest.param(with_acme('numbers:\n  - number: "+999"\n' + OWNED), 2, "numbers[0].number",
                     "'+999' is not a valid E.164 number", id="invalid-number"),
        pytest.param(with_acme('numbers:\n  - number: "+3120123456"\n' + OWNED), 2, "numbers[0].number",
                     "not a valid E.164 number", id="number-one-digit-short"),
        pytest.param(with_acme('numbers:\n  - number: ["+31201234567"]\n' + OWNED), 2, "numbers[0].number", "E.164",
                     id="number-a-list"),
        pytest.param(with_acme("numbers:\n  - announcement: beep\n" + BARE), 2, "numbers[0].number", "missing",
                     id="missing-number"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    number: "+3215123456"\n' + OWNED), 3,
                     "numbers[0].number", "given twice", id="key-given-twice-in-a-number"),
        # The announcement: an Asterisk sound name, relative to the sounds directory
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    announcement: hello world\n' + BARE), 3,
                     "numbers[0].announcement", "Asterisk sound name", id="announcement-with-space"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    announcement: ../../etc/passwd\n' + BARE),
                     3, "numbers[0].announcement", "Asterisk sound name", id="announcement-leaving-sounds-dir"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    announcement: custom/../../secret\n'
                               + BARE), 3, "numbers[0].announcement", "Asterisk sound name",
                     id="announcement-with-dotdot-inside"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    announcement: /etc/asterisk/secret\n'
                               + BARE), 3, "numbers[0].announcement", "Asterisk sound name",
                     id="announcement-absolute-path"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    announcement: custom/\n' + BARE), 3,
                     "numbers[0].announcement", "Asterisk sound name", id="announcement-a-directory"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    announcement: custom//welcome\n' + BARE),
                     3, "numbers[0].announcement", "Asterisk sound name", id="announcement-with-empty-directory"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    announcement: [beep]\n' + BARE), 3,
                     "numbers[0].announcement", "Asterisk sound name", id="announcement-a-list"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    announcement:\n' + BARE), 3,
                     "numbers[0].announcement", "Asterisk sound name", id="announcement-empty"),
        # The customer a number belongs to
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    type: local\n    announcement: beep\n'), 2,
                     "numbers[0].customer", "missing; expected the id of a customer", id="customer-missing"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    customer: acme-bv\n    type: local\n'
                               "    announcement: beep\n"), 3,
                     "numbers[0].customer", "'acme-bv' is not a customer in 'customers'", id="customer-unknown"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    customer: Acme\n    type: local\n'
                               "    announcement: beep\n"), 3,
                     "numbers[0].customer", "'Acme' is not a customer", id="customer-id-in-other-case"),
        # The number's type
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    customer: acme\n    announcement: beep\n'), 2,
                     "numbers[0].type", f"missing; expected one of {TYPES}", id="type-missing"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n    customer: acme\n    type: mobile\n'
                               "    announcement: beep\n"), 4,
                     "numbers[0].type", f"'mobile': expected one of {TYPES}", id="type-unknown"),
        # The list itself
        pytest.param(with_acme('numbers:\n  - "+31201234567"\n'), 2, "numbers[0]", "expected a mapping",
                     id="entry-not-a-mapping"),
        pytest.param(with_acme('numbers:\n  number: "+31201234567"\n'), 2, "numbers", "expected a list",
                     id="numbers-not-a-list"),
        pytest.param(with_acme("numbers:\n"), 1, "numbers", "expected a list", id="numbers-empty"),
        pytest.param(ACME, 1, "numbers", "missing", id="numbers-missing"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n' + OWNED + '  - number: "+31201234567"\n'
                               + OWNED), 6, "numbers[1].number", "+31201234567 is configured twice",
                     id="duplicate-number"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n' + OWNED + '  - number: "+31 20 123 45 67"\n'
                               + OWNED), 6, "numbers[1].number", "+31201234567 is configured twice",
                     id="duplicate-spelled-differently"),
        pytest.param(with_acme('numbers:\n  - number: "+31201234567"\n' + OWNED + '  - number: "+31-20-1234567"\n'
                               + OWNED), 6, "numbers[1].number", "+31201234567 is configured twice",
                     id="duplicate-with-dashes"),
    ]


def _customer_problem_cases() -> list[Any]:
    """(file text, line, key, words the expectation contains) for problems in the customers list."""
    bad_id = "expected an id of letters, digits, '.', '_' or '-' (at most 64)"
    return [
        pytest.param("numbers: []\n", 1, "customers", "missing; expected a list of customers with 'id' and 'name'",
                     id="customers-missing"),
        pytest.param("customers:\nnumbers: []\n", 1, "customers", "expected a list of customers", id="customers-empty"),
        pytest.param("customers:\n  id: acme\n  name: Acme BV\nnumbers: []\n", 2, "customers",
                     "expected a list of customers", id="customers-not-a-list"),
        pytest.param("customers:\n  - acme\nnumbers: []\n", 2, "customers[0]",
                     "expected a mapping with 'id' and 'name'", id="customer-not-a-mapping"),
        pytest.param("customers:\n  - id: acme\n    name: Acme BV\n    vat: NL0001\nnumbers: []\n", 4,
                     "customers[0].vat", "unknown key; expected one of blocked_callers, blocked_with, id, max_calls, name", id="unknown-key-in-a-customer"),
        pytest.param("customers:\n  - id: acme\n    name: Acme BV\n    name: Acme NV\nnumbers: []\n", 4,
                     "customers[0].name", "given twice", id="key-given-twice-in-a-customer"),
        pytest.param("customers:\n  - name: Acme BV\nnumbers: []\n", 2, "customers[0].id", bad_id, id="id-missing"),
        pytest.param("customers:\n  - id: acme bv\n    name: Acme BV\nnumbers: []\n", 2, "customers[0].id", bad_id,
                     id="id-with-space"),
        pytest.param("customers:\n  - id: -acme\n    name: Acme BV\nnumbers: []\n", 2, "customers[0].id", bad_id,
                     id="id-starting-with-dash"),
        pytest.param("customers:\n  - id: acme/bv\n    name: Acme BV\nnumbers: []\n", 2, "customers[0].id", bad_id,
                     id="id-with-slash"),
        pytest.param("customers:\n  - id: ácme\n    name: Acme BV\nnumbers: []\n", 2, "customers[0].id", bad_id,
                     id="id-not-ascii"),
        pytest.param(f"customers:\n  - id: {'a' * 65}\n    name: Acme BV\nnumbers: []\n", 2, "customers[0].id",
                     bad_id, id="id-longer-than-64"),
        pytest.param("customers:\n  - id: [acme]\n    name: Acme BV\nnumbers: []\n", 2, "customers[0].id", bad_id,
                     id="id-a-list"),
        pytest.param("customers:\n  - id: acme\nnumbers: []\n", 2, "customers[0].name", "expected the customer's name",
                     id="name-missing"),
        pytest.param('customers:\n  - id: acme\n    name: "  "\nnumbers: []\n', 3, "customers[0].name",
                     "expected the customer's name", id="name-blank"),
        pytest.param("customers:\n  - id: acme\n    name: Acme BV\n  - id: acme\n    name: Acme Again\n"
                     "numbers: []\n", 4, "customers[1].id", "customer acme is configured twice",
                     id="duplicate-customer"),
    ]


class TestLoadReportsProblems:
    """Each problem reads FILE:LINE: KEY: what was expected."""

    @pytest.mark.parametrize(("text", "line", "key", "says"), _number_problem_cases() + _customer_problem_cases())
    def test_problem_names_file_line_and_key(self, tmp_path: Path, text: str, line: int, key: str, says: str) -> None:
        path = write(tmp_path, text)

        [problem] = problems(path)

        assert problem.startswith(f"{path}:{line}: {key}: "), problem
        assert says in problem

    def test_id_of_64_characters_is_accepted(self, tmp_path: Path) -> None:
        """The longest id the billing tables take."""
        cid = "a" * 64

        cfg = load(write(tmp_path, f"customers:\n  - id: {cid}\n    name: Acme BV\nnumbers: []\n"))

        assert list(cfg.customers) == [cid]

    def test_all_problems_are_reported_at_once(self, tmp_path: Path) -> None:
        """Three mistakes on three lines: the admin sees all three in one run, in file order."""
        path = write(tmp_path, with_acme(
            "numbers:\n"
            '  - number: "+31201234567"\n'
            + OWNED +
            "    colour: red\n"  # line 6: unknown key
            '  - number: "+999"\n'  # line 7: invalid number
            + OWNED +
            '  - number: "+3215123456"\n'
            + BARE +
            "    announcement: hello world\n"  # line 14: bad sound name
        ))

        assert where(problems(path)) == [
            [f"{path}:6", "numbers[0].colour"],
            [f"{path}:7", "numbers[1].number"],
            [f"{path}:14", "numbers[2].announcement"],
        ]

    def test_customer_and_type_problems_are_reported_together(self, tmp_path: Path) -> None:
        """Every new rule broken once: all six problems in one run, in file order."""
        path = write(tmp_path, (
            "customers:\n"
            "  - id: acme bv\n"  # line 2: bad id
            "    name: Acme BV\n"
            "  - id: bakery\n"
            "    name: Brussels Bakery\n"
            "  - id: bakery\n"  # line 6: duplicate customer
            "    name: Brussels Bakery again\n"
            "numbers:\n"
            '  - number: "+31201234567"\n'
            "    customer: nobody\n"  # line 10: unknown customer
            "    type: local\n"
            "    announcement: beep\n"
            '  - number: "+3215123456"\n'  # line 13: type missing (reported at the entry)
            "    customer: bakery\n"
            "    announcement: beep\n"
            '  - number: "+31201234568"\n'
            "    customer: bakery\n"
            "    type: tollfree\n"  # line 18: not a toll-free number
            "    announcement: beep\n"
            '  - number: "+318001234567"\n'
            "    customer: bakery\n"
            "    type: local\n"  # line 22: a toll-free number
            "    announcement: beep\n"
        ))

        assert where(problems(path)) == [
            [f"{path}:2", "customers[0].id"],
            [f"{path}:6", "customers[2].id"],
            [f"{path}:10", "numbers[0].customer"],
            [f"{path}:13", "numbers[1].type"],
            [f"{path}:18", "numbers[2].type"],
            [f"{path}:22", "numbers[3].type"],
        ]

    def test_numbers_of_a_missing_customers_list_are_each_reported(self, tmp_path: Path) -> None:
        """Without customers no number has an owner: the list is missing, and each number says whose it is not."""
        path = write(tmp_path, 'numbers:\n  - number: "+31201234567"\n' + OWNED)

        assert where(problems(path)) == [[f"{path}:1", "customers"], [f"{path}:3", "numbers[0].customer"]]

    def test_duplicate_is_reported_once_for_the_later_entry(self, tmp_path: Path) -> None:
        path = write(tmp_path, with_acme('numbers:\n  - number: "+31201234567"\n' + OWNED
                                         + '  - number: "+31201234567"\n' + OWNED
                                         + '  - number: "31201234567"\n' + OWNED))

        # The third entry is a different problem: no quotes/plus, not a duplicate.
        assert where(problems(path)) == [[f"{path}:6", "numbers[1].number"], [f"{path}:10", "numbers[2].number"]]

    def test_key_given_twice_is_a_problem(self, tmp_path: Path) -> None:
        """An admin appending a second 'numbers:' block must not silently take the first block's numbers away."""
        path = write(tmp_path, with_acme('numbers:\n  - number: "+31201234567"\n' + OWNED
                                         + 'numbers:\n  - number: "+3215123456"\n' + OWNED))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:6: (top level).numbers: given twice"), problem

    def test_invalid_yaml_names_the_line(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'numbers:\n  - number: "+31201234567"\n    announcement: hello: world\n'
                               '  - number: "+3215123456"\n')

        assert problems(path) == [f"{path}:3: not valid YAML: mapping values are not allowed here"]

    def test_tab_indentation_is_invalid_yaml_on_its_line(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'numbers:\n\t- number: "+31201234567"\n')

        [problem] = problems(path)

        assert problem.startswith(f"{path}:2: not valid YAML")

    @pytest.mark.parametrize(
        ("text", "where"),
        [("- number: '+31201234567'\n", ":1"), ("just a string\n", ":1"), ("", "")],
        ids=["a-list", "a-string", "empty-file"],
    )
    def test_top_level_that_is_not_a_mapping_is_refused(self, tmp_path: Path, text: str, where: str) -> None:
        path = write(tmp_path, text)

        assert problems(path) == [
            f"{path}{where}: (top level): expected a mapping with 'customers' and 'numbers' lists"]

    def test_missing_file_says_it_cannot_be_read(self, tmp_path: Path) -> None:
        path = tmp_path / "nowhere.yaml"

        [problem] = problems(path)

        assert problem.startswith(f"{path}: cannot read")

    def test_config_error_is_a_value_error(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError):
            load(write(tmp_path, "numbers: 1\n"))

    def test_announcement_ending_in_a_newline_is_refused(self, tmp_path: Path) -> None:
        path = write(tmp_path, with_acme('numbers:\n  - number: "+31201234567"\n' + BARE
                                         + "    announcement: |\n      hello-world\n"))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:5: numbers[0].announcement: "), problem

    def test_customer_id_ending_in_a_newline_is_refused(self, tmp_path: Path) -> None:
        path = write(tmp_path, 'customers:\n  - id: "acme\\n"\n    name: Acme BV\nnumbers: []\n')

        [problem] = problems(path)

        assert problem.startswith(f"{path}:2: customers[0].id: "), problem

    def test_key_that_is_not_a_scalar_is_a_problem(self, tmp_path: Path) -> None:
        path = write(tmp_path, with_acme('numbers:\n  - number: "+31201234567"\n' + OWNED + "    ? [announcement]\n"
                                         "    : hello-world\n"))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:6: numbers[0]"), problem

    def test_number_that_cannot_be_priced_is_refused(self, tmp_path: Path) -> None:
        path = write(tmp_path, with_acme('numbers:\n  - number: "+80012345678"\n    customer: acme\n'
                                         '    type: tollfree\n    announcement: beep\n'))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:2: numbers[0]"), problem


class TestNumberTypeFitsTheNumber:
    """Toll-free and premium numbers are priced differently: the declared type must agree with phonenumbers."""

    @pytest.mark.parametrize(
        ("number", "number_type"),
        [
            ("+318001234567", NumberType.TOLLFREE),
            ("+319001234567", NumberType.PREMIUM),
            ("+18005550100", NumberType.TOLLFREE),  # US toll-free
            ("+31201234567", NumberType.LOCAL),
            ("+31201234567", NumberType.NATIONAL),  # local or national: the admin's call, not the number's
            ("+12025550100", NumberType.INTERNATIONAL),
        ],
    )
    def test_type_that_fits_the_number_is_accepted(self, tmp_path: Path, number: str, number_type: NumberType) -> None:
        cfg = load(write(tmp_path, with_acme(f'numbers:\n  - number: "{number}"\n    customer: acme\n'
                                             f"    type: {number_type.value}\n    announcement: beep\n")))

        assert cfg.numbers[number].number_type is number_type

    @pytest.mark.parametrize(
        ("number", "declared", "says"),
        [
            ("+31201234567", "tollfree", "'tollfree' does not fit +31201234567, which is not a tollfree number"),
            ("+318001234567", "local", "'local' does not fit +318001234567, which is a tollfree number"),
            ("+318001234567", "national", "which is a tollfree number"),
            ("+318001234567", "international", "which is a tollfree number"),
            ("+318001234567", "premium", "which is a tollfree number"),
            ("+31201234567", "premium", "'premium' does not fit +31201234567, which is not a premium number"),
            ("+319001234567", "local", "'local' does not fit +319001234567, which is a premium number"),
            ("+319001234567", "tollfree", "which is not a tollfree number"),
        ],
        ids=["tollfree-on-a-geographic-number", "0800-declared-local", "0800-declared-national",
             "0800-declared-international", "0800-declared-premium", "premium-on-a-geographic-number",
             "0900-declared-local", "0900-declared-tollfree"],
    )
    def test_type_that_does_not_fit_names_the_line_and_key(self, tmp_path: Path, number: str, declared: str,
                                                          says: str) -> None:
        path = write(tmp_path, with_acme(f'numbers:\n  - number: "{number}"\n    customer: acme\n'
                                         f"    type: {declared}\n    announcement: beep\n"))

        [problem] = problems(path)

        assert problem.startswith(f"{path}:4: numbers[0].type: "), problem
        assert says in problem


class TestConfigNumber:
    """Config.number: the configured number for the DID Asterisk hands over, whatever its spelling."""

    NUMBER = Number("+31201234567", "acme", NumberType.LOCAL, "hello-world")
    CFG = Config(customers={"acme": Customer("acme", "Acme BV")}, numbers={"+31201234567": NUMBER})

    @pytest.mark.parametrize(
        ("did", "found"),
        [
            ("+31201234567", True),
            ("31201234567", True),  # carriers often send the DID without '+'
            (" +31201234567 ", True),
            ("+31 20 123 4567", True),
            ("+31209999999", False),  # valid, not configured
            ("0201234567", False),  # national format: no country, not E.164
            ("0123", False),
            ("", False),
            ("s", False),  # Asterisk's start extension
            ("+3120123456", False),
        ],
    )
    def test_finds_configured_number_in_any_e164_spelling(self, did: str, found: bool) -> None:
        number = self.CFG.number(did)

        assert number == (self.NUMBER if found else None)


class TestToE164:
    """to_e164: the one place a dialled string becomes E.164 (phonenumbers, no prefix tables)."""

    @pytest.mark.parametrize(
        ("raw", "e164"),
        [
            ("+31201234567", "+31201234567"),
            ("31201234567", "+31201234567"),
            ("+31 20 123 4567", "+31201234567"),
            ("+31-20-123-4567", "+31201234567"),
            ("+1 202 555 0100", "+12025550100"),
            ("+3215123456", "+3215123456"),
            ("+318001234567", "+318001234567"),
            ("+999", None),
            ("+0123", None),
            ("0123", None),
            ("abc", None),
            ("", None),
        ],
    )
    def test_e164_form_or_none(self, raw: str, e164: str | None) -> None:
        assert to_e164(raw) == e164


ROOT = Path(__file__).resolve().parents[2]


def documented_example() -> str:
    """The YAML block under "A complete example" in docs/configuration.md."""
    doc = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    section = doc.split("\n## A complete example\n", 1)[1]
    return section.split("```yaml\n", 1)[1].split("\n```", 1)[0] + "\n"


class TestExampleConfigs:
    """The configurations people copy from are valid, and say what their readers rely on."""

    def test_documented_example_is_accepted(self, tmp_path: Path) -> None:
        """docs/configuration.md's complete example: what `fairline config check` accepts, so the doc cannot rot."""
        cfg = load(write(tmp_path, documented_example()))

        assert sorted(cfg.numbers) == ["+31201230005", "+31201234567", "+31201234568", "+318001234567",
                                       "+3215123456"]
        assert list(cfg.queues) == ["support"]

    def test_documented_example_uses_every_key_of_a_number_and_a_route(self, tmp_path: Path) -> None:
        text = documented_example()

        for key in ("announcement:", "route:", "hours:", "outside_hours:", "international_forwarding:",
                    "strategy:", "ring_seconds:", "targets:", "no_answer:", "tariff:",
                    "queues:", "agents:", "wrapup_seconds:", "max_wait_seconds:", "position_every_seconds:",
                    "overflow:", "{queue:"):
            assert key in text, key

    def test_demo_number_rings_a_mobile_and_a_landline(self) -> None:
        cfg = load(ROOT / "dialplan" / "fairline.yaml")

        route = cfg.numbers["+31201234567"].route
        assert route is not None
        assert [(t.e164, t.kind.value) for t in route.targets] == [("+31612345673", "mobile"),
                                                                    ("+31201234591", "fixed")]
        assert cfg.numbers["+318001234567"].number_type.value == "tollfree"


class TestConfigText:
    """Config.text: the file as it was loaded, for configuration versions to hash and compare."""

    def test_text_is_the_file_with_its_newlines_untouched(self, tmp_path: Path) -> None:
        """Windows line ends stay, so the hash is the file's own (`sha256sum FILE`)."""
        text = with_acme('numbers:\n  - number: "+31201234567"\n' + OWNED).replace("\n", "\r\n")
        path = tmp_path / "fairline.yaml"
        path.write_bytes(text.encode("utf-8"))

        assert load(path).text == text

    def test_file_that_is_not_utf8_is_refused_naming_the_byte(self, tmp_path: Path) -> None:
        path = tmp_path / "fairline.yaml"
        path.write_bytes(b"customers: []\nnumbers: []\n# caf\xe9\n")

        assert problems(path) == [f"{path}: not UTF-8 text (byte 31); expected a UTF-8 YAML file"]


class TestStoredText:
    """A version from the configuration store is checked as a file is, its problems named by the version."""

    def test_a_valid_version_gives_the_same_config_as_its_file(self, tmp_path: Path) -> None:
        text = (Path(__file__).resolve().parents[2] / "dialplan" / "fairline.yaml").read_text()
        path = tmp_path / "fairline.yaml"
        path.write_text(text)
        assert parse(text, "config v12") == load(path)

    def test_problems_name_the_version_and_the_line(self) -> None:
        text = "customers:\n  - id: acme\n    name: Acme\nnumbers:\n  - number: '+31201234567'\n    customer: nobody\n"
        with pytest.raises(ConfigError) as raised:
            parse(text, "config v12")
        assert raised.value.problems and all(p.startswith("config v12:") for p in raised.value.problems)
        assert any(p.startswith("config v12:6: ") and "nobody" in p for p in raised.value.problems)


def test_a_problem_at_the_end_of_the_stream_is_on_the_texts_last_line() -> None:
    """An empty document after a byte order mark: its mark is one line past the text (found by the fuzz test)."""
    with pytest.raises(ConfigError) as raised:
        parse("---\n\ufeff", "f.yaml")
    assert [p.split(":")[1] for p in raised.value.problems] == ["2"]
