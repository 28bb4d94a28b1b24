"""Why a document is not in Xero, and what to change: Xero's own words matched to the site's settings.

A refusal names something of the document (an account code, a tax type, a tracking option, the
contact, the date); the site's settings are what put it there. `diagnose` finds, for each thing Xero
refused, the CI codes and the setting behind it (`mapping.sales_accounts.FOOTWEAR` → account 202) and
says what to change. Xero's wording is matched loosely (quotes optional, any case), from the messages
Xero documents and answers (and the sandbox repeats): "Account code '202' has been archived, or is not
a valid code for this document.", "The TaxType code 'OUTPUT2' does not exist or cannot be used with this
type of transaction.", "Account must be valid.", "The tracking option 'North' does not exist or has been
archived in the tracking category 'CI Branches'.", "Unable to assign an Archived contact.", "The
document date cannot be on or before the period lock date (30 Sep 2026) …". A refusal nothing here
recognises is said to be so, with Xero's words, never guessed at.

Outcomes that are not refusals (`stopped`, `unknown`, `deferred`, `kept`, …) have their own plain fixes.
`explain_failures` does it for a results frame and says, per document, which Xero lines were refused and
how many CI lines are behind them; `failure_headline` is the one paragraph a person reads first.
Pure: plain data in, plain data out.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from .eretailer import ADJUSTMENT, branch_options_of
from .rules import EretailerRules

RERUN = "re-run the day (only what is missing is sent)"
RERUN_DAYS = "re-run the days (only what is missing is sent)"
CI_DOCUMENTS_SHOWN = 3  # CI numbers shown in a table cell; the full list is in a JSON entry
LINES_SHOWN = 3  # refused line groups shown per document (the header counts them all)

EXPLAINED_COLUMNS = [
    "document_key", "business_date", "number", "endpoint", "outcome", "amount_cents", "reason", "cause", "fix",
    "settings", "ci_documents", "failed_lines", "ci_rows", "ci_invoice_nos",
]


@dataclass(frozen=True)
class Cause:
    """One thing wrong with a document: what Xero refused, which setting put it there, what to change."""

    kind: str  # account, tax_type, tracking_option, tracking_category, contact, lock_date, paid, currency,
    # transient, stopped, unknown, deferred, kept, locked, differs, conflict, unrecognised
    cause: str  # "Xero refused account 202 (archived in Xero), used by CI code FOOTWEAR via mapping.sales_accounts.FOOTWEAR"
    fix: str  # "point mapping.sales_accounts.FOOTWEAR in site.yaml at an active revenue account, or restore account 202 in Xero"
    settings: tuple[str, ...] = ()
    # what of the document's lines Xero refused, to point at them: ("account", "202"), ("tax_type", "OUTPUT2"), ("option", "North")
    refused: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Diagnosis:
    reason: str  # Xero's words (or the posting's, for outcomes that are not refusals)
    causes: tuple[Cause, ...]

    @property
    def cause(self) -> str:
        return "; ".join(dict.fromkeys(c.cause for c in self.causes))

    @property
    def fix(self) -> str:
        return "; ".join(dict.fromkeys(c.fix for c in self.causes))

    @property
    def settings(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for c in self.causes for s in c.settings))

    @property
    def refused(self) -> tuple[tuple[str, str], ...]:
        return tuple(dict.fromkeys(r for c in self.causes for r in c.refused))

    @property
    def then_rerun(self) -> bool:
        """Whether re-running the day after the fix is what to do (not for reported outcomes)."""
        return any(c.kind not in ("deferred", "locked", "paid", "differs", "conflict") for c in self.causes)


@dataclass(frozen=True)
class SiteView:
    """What the diagnosis reads of the site settings: the books' rules and the tracking strategy."""

    rules: EretailerRules
    tracking_strategy: str = "create"
    # branch code → option name as the documents were built (tracking.branch_options or CI's branch name)
    branch_options: Mapping[str, str] = field(default_factory=dict)
    # the CI analysis codes of the document's lines, when known: the codes named are those it uses
    used_codes: frozenset[str] | None = None
    # the settings that name a document's contact, for a process whose contacts are not E-Retailer's
    contact_settings: tuple[str, ...] | None = None

    def codes_for_account(self, account: str) -> list[str]:
        codes = sorted(code for code, mapped in self.rules.sales_accounts.items() if str(mapped) == account)
        used = [code for code in codes if self.used_codes is None or code in self.used_codes]
        return used or codes

    def gst_codes_for_tax_type(self, tax_type: str) -> list[str]:
        return sorted(code for code, mapped in self.rules.tax_types.items() if str(mapped).casefold() == tax_type.casefold())

    def branches_for_option(self, option: str) -> list[str]:
        return sorted(branch for branch, name in self.branch_options.items() if name.casefold() == option.casefold())


def strip_number(message: str, number: str) -> str:
    """The posting's message starts with the document's number ("W1000314: Account code …"); the
    table has the number in its own column."""
    text = (message or "").strip()
    prefix = f"{number}: "
    return text[len(prefix):] if number and text.startswith(prefix) else text


def _quoted(value: str) -> str:
    return value.strip().strip("'\"‘’“” ").rstrip(".")


def _setting_list(prefix: str, keys: Iterable[str]) -> list[str]:
    return [f"{prefix}.{key}" for key in keys]


def _and(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _or(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


# -- Xero's words, matched ------------------------------------------------------------------------

_Q = r"['\"‘’“”]?"  # Xero quotes the code in some messages and not in others
_ACCOUNT_ARCHIVED = re.compile(rf"account code {_Q}(?P<code>[^'\"‘’“”\s]+?){_Q},? (?:has been|is) archived", re.I)
_ACCOUNT_INVALID = re.compile(rf"account code {_Q}(?P<code>[^'\"‘’“”\s]+?){_Q},? (?:is not a valid|is invalid|does not exist)", re.I)
_ACCOUNT_GENERIC = re.compile(r"\baccount (?:must be valid|is not valid|code is invalid|could not be found)", re.I)
_TAX_WITH_ACCOUNT = re.compile(
    rf"TaxType code {_Q}(?P<tax>[^'\"‘’“”]+?){_Q} cannot be used with account code {_Q}(?P<code>[^'\"‘’“”\s]+?){_Q}[.\s]*(?:$|;)", re.I)
_TAX_INVALID = re.compile(rf"TaxType code {_Q}(?P<tax>[^'\"‘’“”]+?){_Q} (?:does not exist|is not valid|is invalid|cannot be used for)", re.I)
_TAX_GENERIC = re.compile(r"\btax (?:rate|type) (?:must be valid|is not valid|is invalid)", re.I)
_OPTION = re.compile(
    rf"tracking option {_Q}(?P<option>[^'\"‘’“”]+?){_Q} (?:does not exist|has been archived|is archived|is not valid|is invalid)"
    r"(?:[^;]*?category ['\"‘’“”](?P<category>[^'\"‘’“”]+)['\"‘’“”])?", re.I)
_CATEGORY = re.compile(rf"tracking category {_Q}(?P<category>[^'\"‘’“”]+?){_Q} (?:does not exist|has been archived|is archived|is not valid)", re.I)
_TRACKING_GENERIC = re.compile(r"\btracking (?:option|category)", re.I)
_LOCK = re.compile(r"lock date", re.I)
_LOCK_PHRASE = re.compile(r"the (?P<which>period|end of year) lock date(?: \((?P<day>[^)]*)\))?", re.I)
_PAID = re.compile(r"payment or credit note allocated|has (?:a )?payments? (?:or credits? )?applied|payments can only be made", re.I)
_CURRENCY = re.compile(r"not subscribed to currency (?P<currency>\w+)", re.I)
_CONTACT_ARCHIVED = re.compile(r"archived contact|contact[^.;]*(?:is|has been) archived", re.I)
_CONTACT = re.compile(r"\bcontact\b", re.I)
_TRANSIENT = re.compile(
    r"\bHTTP [45]\d\d\b|\b5\d\d\b.*(?:error|unavailable)|timed? ?out|connection|the outcome of a write is unknown|"
    r"rate limit|temporarily unavailable|service unavailable|internal server error", re.I)


def _account_cause(code: str, state: str, site: SiteView) -> Cause:
    codes = site.codes_for_account(code)
    settings = _setting_list("mapping.sales_accounts", codes)
    if codes:
        used = f"used by CI code{'s' if len(codes) > 1 else ''} {_and(codes)} via {_and(settings)}"
        target = _and(settings)
    else:
        used = "which no CI code in mapping.sales_accounts maps to now (was the mapping changed after the documents were built?)"
        target = "the mapping.sales_accounts entry that sends it"
    if state == "archived":
        fix = f"point {target} in site.yaml at an active revenue account, or restore account {code} in Xero"
        shown = "archived in Xero"
    else:
        fix = (f"point {target} in site.yaml at a revenue account the organisation has (Xero: Accounting → "
               f"Chart of accounts), or add account {code} there")
        shown = "not a valid code for this document: not in the chart of accounts, or not a revenue account"
    return Cause("account", f"Xero refused account {code} ({shown}), {used}", fix, tuple(settings), (("account", code),))


def _tax_cause(tax_type: str, site: SiteView, account: str | None = None) -> Cause:
    gst_codes = site.gst_codes_for_tax_type(tax_type)
    settings = _setting_list("mapping.tax_types", gst_codes)
    used = (f"used by CI GST code{'s' if len(gst_codes) > 1 else ''} {_and(gst_codes)} via {_and(settings)}" if gst_codes
            else "which no CI GST code in mapping.tax_types maps to now")
    target = _and(settings) if settings else "the mapping.tax_types entry that sends it"
    if account is None:
        return Cause(
            "tax_type",
            f"Xero refused tax type {tax_type} (it does not exist in the organisation or cannot be used on a sales document), {used}",
            f"set {target} in site.yaml to a sales tax type the organisation has (NZ: OUTPUT2 15% GST on income, "
            "ZERORATED, NONE), or restore that tax rate in Xero",
            tuple(settings), (("tax_type", tax_type),),
        )
    codes = site.codes_for_account(account)
    account_settings = _setting_list("mapping.sales_accounts", codes)
    return Cause(
        "tax_type",
        f"Xero refused tax type {tax_type} on account {account} (the account's class does not take it), {used}"
        + (f", and account {account} by {_and(account_settings)}" if account_settings else ""),
        f"set {target} to a tax type account {account} takes, or point {_or(account_settings) if account_settings else 'the account mapping'} "
        "at a revenue account that takes it",
        tuple(settings + account_settings), (("tax_type", tax_type), ("account", account)),
    )


def _option_cause(option: str, category: str | None, site: SiteView) -> Cause:
    category = category or site.rules.tracking_category
    branches = site.branches_for_option(option)
    mapped = [b for b in branches if b in site.rules.tracking_options]
    settings = _setting_list("tracking.branch_options", mapped) or ["tracking.branch_options"]
    by = (f"the option of CI branch{'es' if len(branches) > 1 else ''} {_and(branches)}"
          + (f" via {_and(settings)}" if mapped else " (its CI branch name; no tracking.branch_options entry)")) if branches \
        else "an option no CI branch maps to now"
    if site.tracking_strategy == "existing":
        fix = (f"add or restore option {option!r} in the tracking category {category!r} in Xero (tracking.strategy "
               f"'existing' creates nothing), or map the branch to an active option in {settings[0]}")
        settings = settings + ["tracking.strategy"]
    else:
        fix = (f"restore option {option!r} in the tracking category {category!r} in Xero, or map the branch to "
               f"another option in {settings[0]} (tracking.strategy 'create' makes a missing one)")
    return Cause("tracking_option", f"Xero refused tracking option {option!r} of {category!r} (archived or missing in "
                 f"Xero), {by}", fix, tuple(settings), (("option", option),))


def _category_cause(category: str, site: SiteView) -> Cause:
    return Cause(
        "tracking_category",
        f"Xero refused the tracking category {category!r} (archived or missing in Xero), named by tracking.category_name",
        f"restore the tracking category {category!r} in Xero, or set tracking.category_name to an active category"
        + (" (tracking.strategy 'existing' creates nothing)" if site.tracking_strategy == "existing" else ""),
        ("tracking.category_name", "tracking.strategy"),
    )


def _contact_settings(site: SiteView) -> tuple[str, ...]:
    if site.contact_settings:
        return site.contact_settings
    rules = site.rules
    if rules.mode == "summary":
        return ("eretailer.summary_contact_name",)
    if rules.contact_strategy == "default":
        return ("eretailer.default_contact_name", "eretailer.contact_strategy")
    return ("eretailer.contact_name_format", "eretailer.contact_strategy")


def _contact_cause(words: str, payload: Mapping[str, Any] | None, site: SiteView) -> Cause:
    contact = (payload or {}).get("Contact") or {}
    name = contact.get("Name") or contact.get("ContactNumber") or contact.get("ContactID") or "?"
    if contact.get("Name") and contact.get("ContactNumber"):
        name = f"{contact['Name']} ({contact['ContactNumber']})"  # a person finds it in Xero by either
    settings = _contact_settings(site)
    if _CONTACT_ARCHIVED.search(words):
        return Cause("contact", f"Xero refused the contact {name!r} (archived in Xero), named by {settings[0]}",
                     f"restore the contact {name!r} in Xero, or set {settings[0]} to an active contact", settings)
    return Cause("contact", f"Xero refused the contact {name!r}, named by {settings[0]}",
                 f"check {_and(settings)} in site.yaml against the contacts in Xero", settings)


def _lock_cause(words: str, payload: Mapping[str, Any] | None) -> Cause:
    phrase = _LOCK_PHRASE.search(words)
    lock = (f"the {phrase.group('which').lower()} lock date" + (f" ({phrase.group('day')})" if phrase.group("day") else "")
            if phrase else "Xero's lock date")
    dated = (payload or {}).get("Date")
    return Cause(
        "lock_date",
        f"Xero refused the document's date{f' {dated}' if dated else ''}: it is on or before {lock}",
        "ask the organisation's adviser to move the lock date in Xero (Settings → Advanced → Financial settings), "
        "or post the day as a draft (eretailer.status: DRAFT); a locked period is never written to otherwise",
        ("eretailer.status",),
    )


def _unnamed_cause(kind: str, field: str, payload: dict | None, codes_for: Callable[[str], Iterable[str]],
                   setting_prefix: str, what: str, nothing: str, must_be: str) -> "Cause":
    """Xero refused `what` of the document without naming it: every value of `field` the document uses,
    and the settings that map CI codes to them."""
    used = sorted({str(line.get(field)) for line in (payload or {}).get("LineItems") or [] if line.get(field)})
    codes = sorted({code for value in used for code in codes_for(value)})
    settings = _setting_list(setting_prefix, codes)
    return Cause(
        kind,
        f"Xero refused {what} of the document without naming it (it uses {_and(used) if used else nothing})"
        + (f", mapped by {_and(settings)}" if settings else ""),
        "check each of " + (_and(settings) if settings else setting_prefix) + f" in site.yaml: every one must be {must_be}",
        tuple(settings), tuple((kind, value) for value in used),
    )


def _refusal_causes(words: str, payload: Mapping[str, Any] | None, site: SiteView) -> list[Cause]:
    causes: list[Cause] = []
    accounts_with_tax = set()
    for match in _TAX_WITH_ACCOUNT.finditer(words):
        tax, code = _quoted(match.group("tax")), _quoted(match.group("code"))
        accounts_with_tax.add(code)
        causes.append(_tax_cause(tax, site, account=code))
    for match in _ACCOUNT_ARCHIVED.finditer(words):
        causes.append(_account_cause(_quoted(match.group("code")), "archived", site))
    archived = {c.refused[0][1] for c in causes if c.kind == "account"}
    for match in _ACCOUNT_INVALID.finditer(words):
        code = _quoted(match.group("code"))
        if code not in archived:
            causes.append(_account_cause(code, "invalid", site))
    if _ACCOUNT_GENERIC.search(words) and not any(c.kind == "account" for c in causes):
        causes.append(_unnamed_cause("account", "AccountCode", payload, site.codes_for_account, "mapping.sales_accounts",
                                     "an account", "no account", "an active revenue account in Xero"))
    for match in _TAX_INVALID.finditer(words):
        tax = _quoted(match.group("tax"))
        if not any(c.kind == "tax_type" and ("tax_type", tax) in c.refused for c in causes):
            causes.append(_tax_cause(tax, site))
    if _TAX_GENERIC.search(words) and not any(c.kind == "tax_type" for c in causes):
        causes.append(_unnamed_cause("tax_type", "TaxType", payload, site.gst_codes_for_tax_type, "mapping.tax_types",
                                     "a tax type", "none", "a sales tax type the organisation has"))
    for match in _OPTION.finditer(words):
        category = match.group("category")
        causes.append(_option_cause(_quoted(match.group("option")), _quoted(category) if category else None, site))
    for match in _CATEGORY.finditer(words):
        causes.append(_category_cause(_quoted(match.group("category")), site))
    if _TRACKING_GENERIC.search(words) and not any(c.kind.startswith("tracking") for c in causes):
        causes.append(Cause(
            "tracking_option", "Xero refused the document's tracking (category or option)",
            "check tracking.category_name, tracking.strategy and tracking.branch_options against the tracking "
            "categories in Xero (Settings → Tracking categories)",
            ("tracking.category_name", "tracking.strategy", "tracking.branch_options"),
        ))
    if _LOCK.search(words):
        causes.append(_lock_cause(words, payload))
    if _PAID.search(words):
        causes.append(Cause("paid", "the document has payments or credits applied in Xero, so Xero will not change it",
                            "adjust it in Xero (remove the payment, or a credit note); nothing in site.yaml changes this"))
    currency = _CURRENCY.search(words)
    if currency:
        causes.append(Cause("currency", f"Xero refused the currency {currency.group('currency')}: the organisation does "
                            "not use it", "the E-Retailer documents are sent in NZD: check the organisation's base "
                            "currency in Xero (Settings → Currencies)"))
    if _CONTACT.search(words) and not causes:
        causes.append(_contact_cause(words, payload, site))
    if not causes and _TRANSIENT.search(words):
        causes.append(Cause("transient", f"Xero did not answer cleanly ({words})",
                            "nothing in site.yaml (a fault on the way): the re-run looks up a document whose answer "
                            "was lost before anything is sent again"))
    return causes


def diagnose(outcome: str, message: str, number: str, payload: Mapping[str, Any] | None, site: SiteView) -> Diagnosis:
    """What is wrong with one document that is not in Xero as CI has it, and what to change."""
    words = strip_number(message, number)
    if outcome == "stopped":
        first = words.split(". ")[0].rstrip(".")
        return Diagnosis(words, (Cause(
            "stopped", first,
            "check that ci_database_url points at the live CI database and that CI's end of day has finished; only "
            "if CI deletes documents instead of voiding them, set eretailer.missing_ci_documents: withdraw",
            ("ci_database_url", "eretailer.missing_ci_documents"),
        ),))
    if outcome == "deferred":
        return Diagnosis(words, (Cause(
            "deferred", "Xero's daily call limit for this organisation is used up: the document was not sent",
            "nothing to change: the next run resumes where this one stopped, once Xero's day allows "
            "(xero.day_call_reserve keeps calls back for it)",
        ),))
    if outcome == "unknown":
        return Diagnosis(words, (Cause(
            "unknown", "Xero's answer was lost, and looking the document up failed too: it may or may not be in Xero",
            "nothing to change: the re-run looks the document up in Xero before anything is sent again, so it is "
            "never sent twice",
        ),))
    if outcome == "kept":
        return Diagnosis(words, (Cause(
            "kept", "CI's new version is held back (quarantined or not final); Xero keeps the earlier version",
            "fix the CI rows or the mapping named in validated_eretailer's quarantined_rows for that day",
        ),))
    if outcome == "locked":
        return Diagnosis(words, (_lock_cause(words, payload),))
    if outcome == "paid":
        return Diagnosis(words, (Cause("paid", "the document has payments or credits applied in Xero; CI changed it "
                                       "after posting", "adjust it in Xero (a credit note); it is never touched from here"),))
    if outcome == "differs":
        return Diagnosis(words, (Cause("differs", "another document in Xero holds the number, and it is not this one",
                                       "decide in Xero: if that document should not be there, void it; the number is "
                                       "never reused for CI's document"),))
    if outcome == "conflict":
        return Diagnosis(words, (Cause("conflict", "its CI documents are already in another Xero document",
                                       "check the settings changed since they were posted (eretailer.mode, "
                                       "eretailer.summary_grouping)", ("eretailer.mode", "eretailer.summary_grouping")),))
    causes = _refusal_causes(words, payload, site)
    if not causes:
        causes = [Cause(
            "unrecognised", f"Xero refused {number or 'the document'}; this pipeline does not recognise the reason "
            f"({words or 'Xero gave no message'})",
            "read Xero's words in the reason, correct it in Xero or in site.yaml",
        )]
    return Diagnosis(words, tuple(causes))


# -- the lines Xero refused, and the CI lines behind them -------------------------------------------

def ci_line_keys(invoices: pd.DataFrame, lines: pd.DataFrame, rules: EretailerRules) -> pd.DataFrame:
    """Each CI line with the Xero line it went into: invoice_no, analysis_code, account_code, tax_type,
    option (the branch's tracking option, as the documents were built)."""
    if not len(lines):
        return pd.DataFrame(columns=["invoice_no", "analysis_code", "account_code", "tax_type", "option"])
    options = dict(zip(invoices["invoice_no"], branch_options_of(invoices, rules))) if len(invoices) else {}
    return pd.DataFrame({
        "invoice_no": lines["invoice_no"].to_numpy(),
        "analysis_code": lines["analysis_code"].astype(str).to_numpy(),
        "account_code": lines["analysis_code"].map(dict(rules.sales_accounts)).astype(str).to_numpy(),
        "tax_type": lines["gst_code"].map(dict(rules.tax_types)).astype(str).to_numpy(),
        "option": lines["invoice_no"].map(options).astype(str).to_numpy(),
    })


def branch_options_used(invoices: pd.DataFrame, rules: EretailerRules) -> dict[str, str]:
    """branch code → the tracking option its documents carry."""
    if not len(invoices):
        return dict(rules.tracking_options)
    return dict(zip(invoices["branch_code"].astype(str), branch_options_of(invoices, rules)))


def _line_option(line: Mapping[str, Any]) -> str:
    tracking = line.get("Tracking") or []
    return str(tracking[0].get("Option", "")) if tracking else ""


LineKey = tuple[str, str, str]  # a Xero line's account code, tax type and tracking option


def ci_lines_by_document(ci_lines: pd.DataFrame) -> dict[str, dict[LineKey, Counter]]:
    """CI document → (account, tax type, option) of the Xero line its lines went into → CI lines per
    analysis code (from ci_line_keys), counted once for all documents."""
    by_document: dict[str, dict[LineKey, Counter]] = defaultdict(lambda: defaultdict(Counter))
    if len(ci_lines):
        sizes = ci_lines.groupby(["invoice_no", "account_code", "tax_type", "option", "analysis_code"], sort=False).size()
        for (number, account, tax_type, option, code), count in sizes.items():
            by_document[str(number)][(account, tax_type, option)][code] += int(count)
    return by_document


def lines_behind(numbers: Iterable[str], by_document: Mapping[str, Mapping[LineKey, Counter]]) -> dict[LineKey, Counter] | None:
    """The CI lines behind a Xero document made from these CI documents (None: not known)."""
    merged: dict[LineKey, Counter] = defaultdict(Counter)
    known = False
    for number in numbers:
        if number in by_document:
            known = True
            for key, codes in by_document[number].items():
                merged[key].update(codes)
    return merged if known else None


def failed_lines(payload: Mapping[str, Any] | None, diagnosis: Diagnosis, behind: Mapping[LineKey, Counter] | None) -> str:
    """Which Xero lines Xero refused (grouped by account · tax type · option), with how many CI lines are
    behind each group (`behind`: lines_behind of the document); or that the refusal is of the whole document."""
    refused = diagnosis.refused
    items = list((payload or {}).get("LineItems") or [])
    if not refused or not items:
        return "the whole document" if diagnosis.causes and diagnosis.causes[0].kind not in (
            "stopped", "deferred", "unknown", "kept", "transient", "unrecognised") else ""
    wanted = defaultdict(set)
    for what, value in refused:
        wanted[what].add(value.casefold())

    def hit(line: Mapping[str, Any]) -> bool:
        return (str(line.get("AccountCode", "")).casefold() in wanted["account"]
                or str(line.get("TaxType", "")).casefold() in wanted["tax_type"]
                or _line_option(line).casefold() in wanted["option"])

    refused_lines = [line for line in items if hit(line)]
    if not refused_lines:
        return f"none of its {len(items)} Xero lines carries what Xero named"
    adjustments = [line for line in refused_lines if str(line.get("Description", "")).startswith(ADJUSTMENT)]
    groups: dict[tuple[str, str, str], list[int]] = defaultdict(list)  # → the lines' positions in the document
    for position, line in enumerate(items, start=1):
        if hit(line) and not str(line.get("Description", "")).startswith(ADJUSTMENT):
            groups[(str(line.get("AccountCode", "")), str(line.get("TaxType", "")), _line_option(line))].append(position)
    parts, behind_all, codes_all = [], 0, set()
    for (account, tax_type, option), positions in groups.items():
        where = f"line{'s' if len(positions) > 1 else ''} " + ", ".join(map(str, positions[:5])) + (" …" if len(positions) > 5 else "")
        what = f"{where}: {account} · {tax_type}" + (f" · {option}" if option else "")
        count = 0
        if behind is not None:
            codes: Counter = Counter()
            for (a, t, o), by_code in behind.items():
                if a == account and t == tax_type and (not option or o == option):
                    codes.update(by_code)
            count = sum(codes.values())
            behind_all += count
            codes_all.update(codes)
            what += f" ({count})"
        parts.append((count, what))
    parts.sort(key=lambda part: (-part[0], part[1]))  # where most CI lines are first
    shown = "; ".join(text for _behind, text in parts[:LINES_SHOWN])
    if len(parts) > LINES_SHOWN:
        shown += f"; … (+{len(parts) - LINES_SHOWN})"
    if adjustments:
        shown += ("; " if shown else "") + f"and {len(adjustments)} GST adjustment line{'s' if len(adjustments) > 1 else ''}"
    head = f"{len(refused_lines)} of {len(items)} Xero line{'s' if len(items) != 1 else ''}"
    if behind is not None:
        head += f", from {behind_all} CI line{'s' if behind_all != 1 else ''}" + (f" ({', '.join(sorted(codes_all))})" if codes_all else "")
    return f"{head}: {shown}"


def ci_documents_summary(numbers: Sequence[str]) -> str:
    """'143 CI documents: W1, W2, W3 … (+140)', never every number of a Summary day."""
    numbers = [str(n) for n in numbers]
    if not numbers:
        return "no CI document"
    shown = ", ".join(numbers[:CI_DOCUMENTS_SHOWN])
    more = f" … (+{len(numbers) - CI_DOCUMENTS_SHOWN})" if len(numbers) > CI_DOCUMENTS_SHOWN else ""
    return f"{len(numbers)} CI document{'s' if len(numbers) != 1 else ''}: {shown}{more}"


def ci_rows_pointer(upstream: str, day: str, numbers: Sequence[str], codes: Sequence[str] = ()) -> str:
    """Where the CI rows are: the upstream partition, the view and keys (a long list by reference)."""
    numbers = [str(n) for n in numbers]
    if len(numbers) <= CI_DOCUMENTS_SHOWN:
        keys = f"ci_sales_invoices.invoice_no IN ({', '.join(numbers)})"
    else:
        keys = f"ci_sales_invoices: the {len(numbers)} invoice_no of ci_invoice_nos_by_document"
    lines = " + their ci_sales_invoice_lines" + (f" (analysis_code {', '.join(codes)})" if codes else "")
    return f"{upstream} / {day}: {keys}{lines}"


def explain_failures(
    failed: pd.DataFrame, documents: pd.DataFrame, site: SiteView, upstream: str,
    ci_lines: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per result that is not in Xero as CI has it (EXPLAINED_COLUMNS): Xero's words, the cause,
    the fix, the refused lines and where the CI rows are. `failed` is a posting results frame;
    `documents` the documents frame (payloads by document_key); `ci_lines` from ci_line_keys."""
    payloads = dict(zip(documents["document_key"], documents["payload"])) if len(documents) else {}
    by_document = ci_lines_by_document(ci_lines) if ci_lines is not None else {}
    rows = []
    for row in failed.itertuples(index=False):
        payload = payloads.get(row.document_key)
        numbers = [str(n) for n in (row.ci_invoice_nos or ())]
        behind = lines_behind(numbers, by_document)
        seen = replace(site, used_codes=frozenset(c for codes in behind.values() for c in codes)) if behind is not None else site
        diagnosis = diagnose(row.outcome, row.message or "", row.number, payload, seen)
        refused_codes: list[str] = []
        if behind is not None and diagnosis.refused:
            position = {"account": 0, "tax_type": 1, "option": 2}
            refused_codes = sorted({
                code for key, codes in behind.items() for code in codes
                if any(key[position[what]].casefold() == value.casefold() for what, value in diagnosis.refused)
            })
        rows.append({
            "document_key": row.document_key,
            "business_date": str(row.business_date),
            "number": row.number,
            "endpoint": row.endpoint,
            "outcome": row.outcome,
            "amount_cents": row.total_cents,
            "reason": diagnosis.reason,
            "cause": diagnosis.cause,
            "fix": diagnosis.fix,
            "settings": diagnosis.settings,
            "ci_documents": ci_documents_summary(numbers),
            "failed_lines": failed_lines(payload, diagnosis, behind),
            "ci_rows": ci_rows_pointer(upstream, str(row.business_date), numbers, refused_codes),
            "ci_invoice_nos": tuple(numbers),
        })
    return pd.DataFrame(rows, columns=EXPLAINED_COLUMNS)


def failure_headline(explained: pd.DataFrame) -> str:
    """The failure's first words: for one document its day, number, Xero's reason, the CI code and the
    setting, and the fix; for several, the counts and the most common cause (each row has its own)."""
    if not len(explained):
        return ""
    days = sorted(set(explained["business_date"]))
    then = RERUN if len(days) == 1 else RERUN_DAYS
    causes = Counter(zip(explained["cause"], explained["fix"]))
    (cause, fix), count = causes.most_common(1)[0]
    outcomes = set(explained["outcome"])
    rerun = bool(outcomes - {"deferred"})
    end = f"; then {then}." if rerun else "."
    if len(explained) == 1:
        row = explained.iloc[0]
        text = f"{row['business_date']} {row['number']}: {cause}. Fix: {fix}{end}"
    else:
        text = f"{len(explained)} document(s) of {len(days)} day(s) are not in Xero as CI has them"
        if len(causes) == 1:
            text += f": {cause}. Fix: {fix}{end}"
        else:
            text += (f". The most common cause ({count} of {len(explained)}): {cause}. Fix: {fix}{end} Each document's "
                     "row in failed_documents has its own reason and fix.")
    if "deferred" in outcomes:
        text += " Xero's daily call limit stopped the run; the next run resumes where it stopped."
    stopped = explained[explained["outcome"] == "stopped"].drop_duplicates("business_date")
    for reason in stopped["reason"]:
        if reason and reason.split(". ")[0].rstrip(".") not in text:
            text += f" {reason}"
    return text + " Everything else is posted and recorded."
