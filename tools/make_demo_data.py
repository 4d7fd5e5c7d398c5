#!/usr/bin/env python3
"""Generate the packaged demo QA sets `demo_qa_en.json` and `demo_qa_de.json` (SQuAD v2.0 format).

Why generated: the offline demo needs a few hundred short, extractive questions per language whose answers
can only be found by reading the context. Every fact here is invented (towns, firms, festivals, inventors,
rivers, dishes, clubs, instruments, islands), so a model cannot answer from memorised world knowledge, and
no text is taken from any existing dataset or from Wikipedia. The text is original, written for this project.

How: each article type has a facts sampler and three paragraph templates (English: 9 types, German: 6);
every sentence has several phrasings, and every question has one or more phrasings. An article keeps all
three paragraphs or the first and one other. A seeded `random.Random` drives all choices, so the output is
byte-identical on every run. Each paragraph is checked before it is kept: 40-90 words, and a question is
only asked when its answer (1-5 words) occurs exactly once in the context, on word boundaries, so
`answer_start` from `str.find` is unambiguous. Unanswerable questions ask about the paragraph's topic for a
fact that the article never states; their share is steered towards 27% per language.

Usage:  python tools/make_demo_data.py                  # writes src/qadistill/resources/demo_qa_{en,de}.json
        python tools/make_demo_data.py --out-dir DIR    # writes into DIR instead
        python tools/make_demo_data.py --check          # exits 1 if the shipped files differ from a fresh run
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SEED = 20250611
OUT_DIR = Path(__file__).resolve().parents[1] / "src" / "qadistill" / "resources"
N_ARTICLES = {"en": 48, "de": 32}
# Share of articles that keep only two of their three paragraph templates (German ones have 4 questions more often).
TWO_PARAGRAPH_SHARE = {"en": 0.55, "de": 0.75}
MIN_WORDS, MAX_WORDS = 40, 90

# A paragraph template returns (sentences, [(question, answer)], [unanswerable question]).
ParaOut = tuple[list[str], list[tuple[str, str]], list[str]]


# --------------------------------------------------------------------------------------------------------------
# Shared machinery
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    first: str
    last: str
    female: bool

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}"

    # English pronouns
    @property
    def he(self) -> str:
        return "she" if self.female else "he"

    @property
    def He(self) -> str:  # noqa: N802 - reads naturally in templates
        return "She" if self.female else "He"

    @property
    def his(self) -> str:
        return "her" if self.female else "his"

    @property
    def His(self) -> str:  # noqa: N802
        return "Her" if self.female else "His"

    # German pronouns
    @property
    def er(self) -> str:
        return "sie" if self.female else "er"

    @property
    def Er(self) -> str:  # noqa: N802
        return "Sie" if self.female else "Er"

    @property
    def sein(self) -> str:
        return "ihr" if self.female else "sein"

    @property
    def Sein(self) -> str:  # noqa: N802
        return "Ihr" if self.female else "Sein"

    @property
    def ein(self) -> str:
        return "eine" if self.female else "ein"

    @property
    def der(self) -> str:
        return "die" if self.female else "der"


class World:
    """Hands out invented names without repetition, so every name belongs to exactly one article."""

    def __init__(self, rng: random.Random) -> None:
        self.r = rng
        self.used: set[str] = set()

    def draw(self, pool: Sequence[str]) -> str:
        options = [p for p in pool if p not in self.used]
        if not options:
            raise RuntimeError(f"name pool exhausted: {pool[:3]}...")
        value = self.r.choice(options)
        self.used.add(value)
        return value

    def compose(self, heads: Sequence[str], tails: Sequence[str]) -> str:
        for _ in range(500):
            value = self.r.choice(heads) + self.r.choice(tails)
            if value not in self.used and not any(value in u or u in value for u in self.used if len(u) > 3):
                self.used.add(value)
                return value
        raise RuntimeError(f"could not compose a fresh name from {heads[:3]}...")

    def person(self, firsts: Sequence[tuple[str, bool]], lasts: Sequence[str]) -> Person:
        # Surnames are unique per dataset, so a person's name never leaks into another article.
        first, female = self.r.choice(firsts)
        return Person(first, self.draw(lasts), female)


class G:
    """Per-article helper: phrasing choices and numbers that do not repeat inside the article."""

    def __init__(self, rng: random.Random, world: World, lang: str) -> None:
        self.r = rng
        self.w = world
        self.lang = lang
        self.nums: set[int] = set()

    def p(self, *options: str) -> str:
        return self.r.choice(options)

    def c(self, seq: Sequence):
        return self.r.choice(seq)

    def sample(self, seq: Sequence, k: int) -> list:
        return self.r.sample(list(seq), k)

    def n(self, lo: int, hi: int, step: int = 1) -> int:
        for _ in range(200):
            value = self.r.randrange(lo, hi + 1, step)
            if value not in self.nums:
                self.nums.add(value)
                return value
        raise RuntimeError("number range exhausted")

    def year(self, lo: int, hi: int) -> str:
        return str(self.n(lo, hi))

    def fmt(self, value: int) -> str:
        text = f"{value:,}"
        return text.replace(",", ".") if self.lang == "de" else text


@dataclass
class ArticleType:
    name: str
    facts: Callable[[G], dict]
    title: Callable[[dict], str]
    paragraphs: list[Callable[[G, dict], ParaOut]] = field(default_factory=list)


def word_count(text: str) -> int:
    return len(text.split())


_A_BEFORE_VOWEL = re.compile(r"\b([Aa]) (?=[AEIOUaeiou])")


def fix_articles(text: str, lang: str) -> str:
    """English "a" before a vowel becomes "an" ("a inn" -> "an inn"); templates insert words of either kind."""
    return _A_BEFORE_VOWEL.sub(r"\1n ", text) if lang == "en" else text


def add_company_years(g: G, f: dict) -> None:
    """A company's flagship comes after its founding, and its second factory after the flagship."""
    year = int(f["year"])
    f["myear"] = g.year(year + 4, year + 30)
    f["fyear"] = g.year(int(f["myear"]) + 2, min(int(f["myear"]) + 20, 2024))


# --------------------------------------------------------------------------------------------------------------
# English name pools (all invented)
# --------------------------------------------------------------------------------------------------------------

EN_FIRST = [
    ("Ada", True),
    ("Bertram", False),
    ("Cornelia", True),
    ("Desmond", False),
    ("Elowen", True),
    ("Fenella", True),
    ("Gideon", False),
    ("Harriet", True),
    ("Ivo", False),
    ("Jessamy", True),
    ("Lorcan", False),
    ("Marguerite", True),
    ("Nathaniel", False),
    ("Odile", True),
    ("Percival", False),
    ("Rosalind", True),
    ("Silas", False),
    ("Tabitha", True),
    ("Ursula", True),
    ("Wendel", False),
    ("Ambrose", False),
    ("Clemency", True),
    ("Edwin", False),
    ("Hester", True),
    ("Jasper", False),
    ("Linnea", True),
    ("Morwenna", True),
    ("Osric", False),
    ("Piers", False),
    ("Thea", True),
]
EN_LAST = [
    "Ashcombe",
    "Brindlewood",
    "Calloway",
    "Dunmore",
    "Everleigh",
    "Fairweather",
    "Greave",
    "Hollowell",
    "Ingleby",
    "Kettleby",
    "Larkspur",
    "Merriweather",
    "Nettlefold",
    "Osgood",
    "Pennyworth",
    "Quillfeather",
    "Rookwood",
    "Stallard",
    "Thistlewood",
    "Underhill",
    "Vantreight",
    "Whitlock",
    "Yardley",
    "Ambler",
    "Blackwood",
    "Crowther",
    "Dimmock",
    "Ellery",
    "Fawkner",
    "Gallimore",
    "Hatherley",
    "Jessop",
    "Kingsmill",
    "Lightfoot",
    "Mallory",
    "Northam",
    "Oakshott",
    "Pargeter",
    "Rainsford",
    "Sumner",
    "Tregarth",
    "Venning",
    "Wickstead",
    "Ashdown",
    "Bellweather",
    "Cordrey",
    "Daventry",
    "Elphick",
    "Farrant",
    "Gosling",
    "Hobday",
    "Isherwood",
    "Jolliffe",
    "Kimber",
    "Lovibond",
    "Maltby",
    "Nutley",
    "Ormerod",
    "Pilbeam",
    "Quarrendon",
    "Rendell",
    "Sealby",
    "Tolhurst",
    "Upjohn",
    "Vokins",
    "Winstanley",
    "Applegarth",
    "Birtwhistle",
    "Challoner",
    "Dimbleby",
    "Eddowes",
    "Fettiplace",
    "Goodenough",
    "Harbottle",
    "Ironside",
    "Jellicoe",
    "Kettlewell",
    "Lambkin",
    "Mountjoy",
    "Noakes",
    "Outhwaite",
    "Pettifer",
    "Quilliam",
    "Rushworth",
    "Scattergood",
    "Treadwell",
    "Uttley",
    "Vavasour",
    "Wetherall",
    "Yeoland",
    "Arbuthnot",
    "Brocklehurst",
    "Cheverton",
    "Duckworth",
    "Entwistle",
    "Frobisher",
    "Gathercole",
    "Hesketh",
    "Ibbotson",
    "Kenworthy",
    "Loveday",
    "Moxham",
    "Nethercott",
    "Popplewell",
    "Redfearn",
    "Sidebottom",
]
EN_TOWN_HEADS = [
    "Brambl",
    "Corr",
    "Dunmar",
    "Elsk",
    "Fallow",
    "Gorran",
    "Hask",
    "Ilver",
    "Kestr",
    "Lorn",
    "Mossing",
    "Netter",
    "Orrin",
    "Pellow",
    "Quenn",
    "Rasket",
    "Sallow",
    "Tarrow",
    "Umber",
    "Vell",
    "Wrenn",
    "Yarl",
    "Thornap",
    "Cressing",
    "Amble",
]
EN_TOWN_TAILS = ["ford", "mere", "by", "wick", "haven", "stead", "combe", "holt", "ton", "bridge", "well"]
EN_REGIONS = [
    "Greymarch",
    "Tollan Downs",
    "Westerfell",
    "Amberlow",
    "Corvane Hills",
    "Silverwold",
    "Marrow Coast",
    "Hethby Plain",
    "Oldwater Fens",
    "Brackenreach",
]
EN_RIVERS = [
    "Aldwyn",
    "Brennet",
    "Caddow",
    "Dellan",
    "Elvary",
    "Fenlow",
    "Glentor",
    "Hollin",
    "Imber",
    "Kellan",
    "Lorrow",
    "Mardle",
    "Nessock",
    "Orvel",
    "Pennock",
    "Rillan",
    "Tamsey",
    "Ulloway",
    "Verrin",
    "Wendle",
    "Yelver",
    "Sorrel",
    "Quarle",
    "Blythen",
    "Corrin",
    "Drayle",
    "Esker",
    "Fordle",
]
EN_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
EN_WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
EN_NUMWORDS = ["two", "three", "four", "five", "six", "seven", "eight", "nine", "eleven", "twelve"]


def en_town(g: G) -> str:
    return g.w.compose(EN_TOWN_HEADS, EN_TOWN_TAILS)


def en_person(g: G) -> Person:
    return g.w.person(EN_FIRST, EN_LAST)


# --------------------------------------------------------------------------------------------------------------
# English: towns
# --------------------------------------------------------------------------------------------------------------


def en_town_facts(g: G) -> dict:
    return {
        "town": en_town(g),
        "kind": g.c(["market town", "harbour town", "mill town", "hill town", "river town"]),
        "region": g.c(EN_REGIONS),
        "river": g.w.draw(EN_RIVERS),
        "founder": en_person(g),
        "job": g.c(["wool merchant", "ferryman", "blacksmith", "miller", "salt trader", "stonemason"]),
        "bldg": g.c(["mill", "inn", "toll bridge", "chapel", "warehouse"]),
        "year": g.year(1150, 1690),
        "ind": g.c(["weaving", "rope making", "pottery", "salt boiling", "barrel making", "tanning"]),
        "pop": g.fmt(g.n(2100, 38000, 10)),
        "employer": g.w.draw(EN_LAST) + g.c([" & Sons", " Works", " Brothers", " Manufacturing"]),
        "product": g.c(
            [
                "bicycle frames",
                "glass bottles",
                "garden tools",
                "tin toys",
                "weather vanes",
                "canvas tents",
                "copper kettles",
                "school desks",
            ]
        ),
        "city2": en_town(g),
        "ryear": g.year(1848, 1936),
        "rmin": str(g.n(14, 95)),
        "fest": g.c(
            [
                "Lantern Walk",
                "Cheese Fair",
                "Kite Day",
                "Harvest Regatta",
                "Bell Night",
                "Apple Parade",
                "Pumpkin Race",
                "Boat Blessing",
            ]
        ),
        "month": g.c(EN_MONTHS),
        "hl": g.c(
            [
                "race of home-made rafts",
                "parade of decorated hay carts",
                "night concert on the bridge",
                "tug-of-war between the two parishes",
                "contest for the largest pumpkin",
                "torchlit procession",
            ]
        ),
        "mbld": g.c(
            [
                "old customs house",
                "former grain store",
                "disused railway station",
                "former village school",
                "old fire station",
            ]
        ),
        "exhibit": g.c(
            ["painted clocks", "ship models", "antique looms", "carved walking sticks", "lace collars", "brass lamps"]
        ),
        "nexh": str(g.n(40, 900)),
    }


def en_town_p1(g: G, f: dict) -> ParaOut:
    t, fo = f["town"], f["founder"]
    s = [
        g.p(
            f"{t} is a small {f['kind']} in the {f['region']} region.",
            f"The {f['kind']} of {t} lies in the {f['region']} region.",
            f"Located in the {f['region']} region, {t} is a quiet {f['kind']}.",
        ),
        g.p(
            f"It was founded in {f['year']} by {fo.name}, a {f['job']} who built the first {f['bldg']} on the "
            f"banks of the {f['river']}.",
            f"According to the town records, {fo.name}, a {f['job']}, founded the settlement in {f['year']} and "
            f"built a {f['bldg']} beside the {f['river']} river.",
            f"The settlement began in {f['year']}, when {fo.name}, a local {f['job']}, put up a {f['bldg']} "
            f"where the {f['river']} river could be crossed.",
        ),
        g.p(
            f"For centuries most families in {t} lived from {f['ind']}.",
            f"Over the following centuries, {f['ind']} became the main trade of the town.",
            f"{f['ind'].capitalize()} remained the most important trade there until the nineteenth century.",
        ),
        g.p(
            "Parts of the old town wall still stand near the market square.",
            "The narrow streets of the old centre still follow their medieval layout.",
            "Several timber-framed houses from that period survive around the market square.",
        ),
    ]
    qa = [
        (
            g.p(
                f"When was {t} founded?",
                f"In what year was {t} founded?",
                f"In which year did the settlement of {t} begin?",
            ),
            f["year"],
        ),
        (g.p(f"Who founded {t}?", f"Who is named as the founder of {t}?"), fo.name),
        (g.p(f"What was the occupation of {fo.name}?", f"What trade did {fo.name} have?"), f["job"]),
        (
            g.p(f"Which river flows past {t}?", f"Beside which river was the first {f['bldg']} of {t} built?"),
            f["river"],
        ),
        (
            g.p(f"What was the main trade in {t} for centuries?", f"Which trade did most families in {t} live from?"),
            f["ind"],
        ),
        (g.p(f"In which region is {t} located?", f"In what region does {t} lie?"), f["region"]),
    ]
    un = [
        f"Who was the first mayor of {t}?",
        f"How many people lived in {t} in {f['year']}?",
        f"What was the original name of {t}?",
        f"How long is the {f['river']} river?",
    ]
    return s, qa, un


def en_town_p2(g: G, f: dict) -> ParaOut:
    t, emp, c2 = f["town"], f["employer"], f["city2"]
    s = [
        g.p(
            f"Today {t} has about {f['pop']} inhabitants.",
            f"Around {f['pop']} people live in {t} today.",
            f"The present population of {t} is roughly {f['pop']}.",
        ),
        g.p(
            f"The largest employer is {emp}, a factory that makes {f['product']}.",
            f"Most jobs are provided by {emp}, which produces {f['product']}.",
            f"{emp}, a maker of {f['product']}, is the biggest employer in the area.",
        ),
        g.p(
            f"A railway line to {c2} opened in {f['ryear']}, and the trip now takes {f['rmin']} minutes.",
            f"Since {f['ryear']} the town has been linked by rail to {c2}; the journey lasts about "
            f"{f['rmin']} minutes.",
            f"Trains have run to {c2} since {f['ryear']}, taking roughly {f['rmin']} minutes.",
        ),
        g.p(
            "A weekly market is held on Saturdays in the old square.",
            "Many younger residents commute to larger towns for work.",
            "Small workshops and family shops line the main street.",
        ),
    ]
    qa = [
        (g.p(f"How many people live in {t} today?", f"What is the population of {t}?"), f["pop"]),
        (g.p(f"What is the largest employer in {t}?", f"Which company provides the most jobs in {t}?"), emp),
        (g.p(f"What does {emp} make?", f"What products does {emp} produce?"), f["product"]),
        (
            g.p(
                f"When did the railway line from {t} to {c2} open?",
                f"In what year did trains start running from {t} to {c2}?",
            ),
            f["ryear"],
        ),
        (f"How long does the train journey from {t} to {c2} take?", f"{f['rmin']} minutes"),
        (g.p(f"To which town does the railway from {t} lead?", f"Which town can be reached by train from {t}?"), c2),
    ]
    un = [
        f"How many people work at {emp}?",
        f"How much does a train ticket from {t} to {c2} cost?",
        f"When was {emp} founded?",
        f"How many trains a day run between {t} and {c2}?",
    ]
    return s, qa, un


def en_town_p3(g: G, f: dict) -> ParaOut:
    t, fe = f["town"], f["fest"]
    s = [
        g.p(
            f"Every {f['month']} the town celebrates the {fe}, which draws visitors from the whole region.",
            f"The best-known event in {t} is the {fe}, held each year in {f['month']}.",
            f"In {f['month']} of every year, {t} hosts the {fe}.",
        ),
        g.p(
            f"Its highlight is a {f['hl']} on the last evening.",
            f"The most popular part of the festival is a {f['hl']}.",
            f"Most visitors come above all for the {f['hl']}.",
        ),
        g.p(
            f"The town museum, housed in the {f['mbld']}, shows a collection of {f['nexh']} {f['exhibit']}.",
            f"In the {f['mbld']} there is a small museum with {f['nexh']} {f['exhibit']}.",
            f"A local museum in the {f['mbld']} displays some {f['nexh']} {f['exhibit']}.",
        ),
        g.p("It is run by volunteers.", "School classes visit it regularly.", "It is open mainly at weekends."),
    ]
    qa = [
        (g.p(f"In which month is the {fe} held?", f"When in the year does {t} celebrate the {fe}?"), f["month"]),
        (g.p(f"What is the highlight of the {fe}?", f"What is the most popular part of the {fe}?"), f["hl"]),
        (g.p(f"Where is the museum of {t} housed?", f"In which building is the town museum of {t}?"), f["mbld"]),
        (
            g.p(f"What does the museum in {t} collect?", "What kind of objects does the town museum display?"),
            f["exhibit"],
        ),
        (f"How many {f['exhibit']} does the town museum show?", f["nexh"]),
        (f"Which festival does {t} celebrate in {f['month']}?", fe),
    ]
    un = [
        f"Who founded the {fe}?",
        f"In what year was the {fe} first held?",
        f"When did the town museum of {t} open?",
        "How much does a ticket to the town museum cost?",
    ]
    return s, qa, un


# --------------------------------------------------------------------------------------------------------------
# English: companies
# --------------------------------------------------------------------------------------------------------------

EN_CO_HEADS = [
    "Brindle",
    "Corvex",
    "Halden",
    "Lumora",
    "Pellgrave",
    "Quintal",
    "Raskin",
    "Solvane",
    "Tavish",
    "Vantor",
    "Wexley",
    "Yorrick",
    "Ombra",
    "Feldane",
    "Gantry",
    "Marlow",
    "Kestrel",
    "Amberly",
    "Torrin",
    "Nimble",
]
EN_INDUSTRIES = [
    # (name suffix, first product, flagship kind)
    (" Bicycles", "a folding bicycle", "touring bicycle"),
    (" Optics", "a pair of reading glasses", "field telescope"),
    (" Audio", "a valve radio", "loudspeaker"),
    (" Ceramics", "an enamel mug", "stove tile"),
    (" Outdoor", "a canvas rucksack", "mountain tent"),
    (" Instruments", "a pocket barometer", "surveying level"),
    (" Textiles", "a woollen blanket", "rain cape"),
    (" Toys", "a wooden train set", "construction kit"),
    (" Kitchens", "a cast-iron pan", "bread oven"),
]
EN_MODELS = [
    "Kestrel",
    "Meridian",
    "Nomad",
    "Halcyon",
    "Lark",
    "Comet",
    "Saffron",
    "Tundra",
    "Vesper",
    "Zephyr",
    "Pilgrim",
    "Osprey",
    "Juniper",
    "Mistral",
    "Corona",
    "Drifter",
]


def en_company_facts(g: G) -> dict:
    suffix, first, kind = g.c(EN_INDUSTRIES)
    f = {
        "co": g.w.draw(EN_CO_HEADS) + suffix,
        "founder": en_person(g),
        "year": g.year(1868, 1986),
        "place": g.c(
            ["a rented garage", "a small workshop", "the back room of a bakery", "a former stable", "an attic room"]
        ),
        "city": en_town(g),
        "first": first,
        "staff": str(g.n(12, 240)),
        "model": g.w.draw(EN_MODELS) + g.c(["", " 2", " 7", " Classic", " 40"]),
        "kind": kind,
        "sold": g.fmt(g.n(3000, 90000, 500)),
        "city2": en_town(g),
        "ceo": en_person(g),
        "cyear": g.year(2006, 2023),
        "hqb": g.c(
            [
                "converted brick warehouse",
                "former tram depot",
                "glass office tower",
                "restored flour mill",
                "former textile hall",
            ]
        ),
        "hqcity": en_town(g),
        "slogan": g.c(
            [
                "Built to be mended",
                "Made for the long road",
                "Small parts, big ideas",
                "Quiet quality",
                "Honest work, every day",
                "Ready when you are",
            ]
        ),
    }
    add_company_years(g, f)
    return f


def en_company_p1(g: G, f: dict) -> ParaOut:
    co, fo = f["co"], f["founder"]
    s = [
        g.p(
            f"{co} was founded in {f['year']} by {fo.name} in {f['place']} in {f['city']}.",
            f"In {f['year']}, {fo.name} started {co} in {f['place']} in the town of {f['city']}.",
            f"{fo.name} set up {co} in {f['year']}, working from {f['place']} in {f['city']}.",
        ),
        g.p(
            f"The first product was {f['first']}, which {fo.he} sold at local markets.",
            f"The company's first product was {f['first']}, assembled entirely by hand.",
            f"Its earliest product, {f['first']}, was made by {fo.name} alone.",
        ),
        g.p(
            f"Ten years after its founding, the firm employed {f['staff']} people.",
            f"A decade later, {f['staff']} people were working for the company.",
            f"Ten years later the workshop had grown to {f['staff']} employees.",
        ),
        g.p(
            "Money was tight in the early years, and orders came mostly from friends.",
            "Most early customers lived within a day's ride of the workshop.",
            "Many of the first tools were borrowed from neighbours.",
        ),
    ]
    qa = [
        (g.p(f"When was {co} founded?", f"In what year was {co} started?"), f["year"]),
        (g.p(f"Who founded {co}?", f"Who set up {co}?"), fo.name),
        (g.p(f"In which town was {co} founded?", f"Where did {fo.name} start {co}?"), f["city"]),
        (g.p(f"What was the first product of {co}?", f"What did {co} make first?"), f["first"]),
        (f"How many people worked for {co} ten years after it was founded?", f["staff"]),
    ]
    un = [
        f"How much money was needed to start {co}?",
        f"Who was the first customer of {co}?",
        f"What did {fo.name} do before founding {co}?",
        f"How old was {fo.name} when {fo.he} founded {co}?",
    ]
    return s, qa, un


def en_company_p2(g: G, f: dict) -> ParaOut:
    co, m = f["co"], f["model"]
    s = [
        g.p(
            f"The company became famous for the {m}, a {f['kind']} launched in {f['myear']}.",
            f"The best-known product of {co} is the {m}, a {f['kind']} that first went on sale in {f['myear']}.",
            f"In {f['myear']} {co} introduced the {m}, the {f['kind']} that made its name.",
        ),
        g.p(
            f"More than {f['sold']} units were sold in the first five years.",
            f"Over {f['sold']} of them were sold during the first five years.",
            f"Within five years, sales passed {f['sold']} units.",
        ),
        g.p(
            f"To meet demand, a second factory was opened in {f['city2']} in {f['fyear']}.",
            f"A second factory followed in {f['city2']} in {f['fyear']}.",
            f"In {f['fyear']} production expanded to a second factory in {f['city2']}.",
        ),
        g.p(
            "Reviewers praised its sturdy build and simple repairs.",
            "Many early examples are still in use today.",
            "Its plain design was copied by several rivals.",
        ),
    ]
    qa = [
        (g.p(f"What is the best-known product of {co}?", f"Which product made {co} famous?"), m),
        (g.p(f"When was the {m} launched?", f"In what year did the {m} go on sale?"), f["myear"]),
        (g.p(f"What kind of product is the {m}?", f"What type of product is the {m} made by {co}?"), f["kind"]),
        (f"How many units of the {m} were sold in the first five years?", f["sold"]),
        (g.p(f"Where did {co} open its second factory?", f"In which town is the second factory of {co}?"), f["city2"]),
        (f"When did {co} open its second factory?", f["fyear"]),
    ]
    un = [
        f"How much did the {m} cost when it was launched?",
        f"Who designed the {m}?",
        f"How many people work at the second factory of {co}?",
        f"When was the {m} discontinued?",
    ]
    return s, qa, un


def en_company_p3(g: G, f: dict) -> ParaOut:
    co, ceo = f["co"], f["ceo"]
    s = [
        g.p(
            f"Since {f['cyear']}, {co} has been led by {ceo.name}.",
            f"{ceo.name} has been the chief executive of {co} since {f['cyear']}.",
            f"The company has been run by {ceo.name} since {f['cyear']}.",
        ),
        g.p(
            f"Its headquarters are in a {f['hqb']} in {f['hqcity']}.",
            f"The head office occupies a {f['hqb']} in {f['hqcity']}.",
            f"Today the company is based in a {f['hqb']} in {f['hqcity']}.",
        ),
        g.p(
            f'The company\'s slogan, "{f["slogan"]}", is printed on every box.',
            f'Every product carries the slogan "{f["slogan"]}".',
            f'Customers know the firm by its slogan, "{f["slogan"]}".',
        ),
        g.p(
            "The company also trains apprentices in its own workshop.",
            "A small shop next to the entrance sells spare parts.",
            "Visitors can book guided tours of the workshop.",
        ),
    ]
    qa = [
        (g.p(f"Who leads {co}?", f"Who is the chief executive of {co}?"), ceo.name),
        (g.p(f"Since when has {ceo.name} led {co}?", f"In what year did {ceo.name} take charge of {co}?"), f["cyear"]),
        (g.p(f"Where are the headquarters of {co}?", f"In which town is the head office of {co}?"), f["hqcity"]),
        (f"What kind of building houses the head office of {co}?", f["hqb"]),
        (g.p(f"What is the slogan of {co}?", f"Which slogan does {co} use?"), f["slogan"]),
    ]
    un = [
        f"Who led {co} before {ceo.name}?",
        f"What was the annual revenue of {co} last year?",
        f"How many shops does {co} operate?",
        f"How many people work at the headquarters of {co}?",
    ]
    return s, qa, un


# --------------------------------------------------------------------------------------------------------------
# English: festivals
# --------------------------------------------------------------------------------------------------------------

EN_FEST_HEADS = [
    "Lantern",
    "Cinder",
    "Bramble",
    "Gull",
    "Tallow",
    "Juniper",
    "Ember",
    "Heron",
    "Rushlight",
    "Saltmarsh",
    "Willow",
    "Frost",
    "Copper",
    "Barley",
    "Thistle",
    "Driftwood",
]
EN_FEST_TAILS = [" Night", " Tide", " Fair", " Days", " Moon", " Week"]
EN_FOODS = [
    ("tallow cakes", "sweet pastry"),
    ("gull buns", "savoury bun"),
    ("brambleberry tarts", "small fruit pie"),
    ("smoked eel rolls", "fish sandwich"),
    ("honey knots", "fried dough twist"),
    ("barley fritters", "crisp pancake"),
    ("cinder biscuits", "spiced biscuit"),
    ("leek pasties", "pastry parcel"),
]


def en_festival_facts(g: G) -> dict:
    food, desc = g.c(EN_FOODS)
    return {
        "fest": g.w.compose(EN_FEST_HEADS, EN_FEST_TAILS) + " Festival",
        "town": en_town(g),
        "year": g.year(1890, 1994),
        "founder": en_person(g),
        "job": g.c(["fisherman", "schoolteacher", "baker", "ferry captain", "shepherd", "organist"]),
        "season": g.c(["fishing season", "harvest", "long winter", "peat cutting", "sheep shearing"]),
        "days": g.c(["three days", "four days", "five days", "six days", "nine days"]),
        "vis": g.fmt(g.n(1500, 60000, 100)),
        "weekday": g.c(EN_WEEKDAYS),
        "month": g.c(EN_MONTHS),
        "opening": g.c(
            [
                "parade of paper lanterns",
                "ringing of the harbour bell",
                "bonfire on the beach",
                "procession of decorated boats",
                "drum march through the old town",
            ]
        ),
        "contest": g.c(
            ["raft race", "bread-baking contest", "tug-of-war", "kite duel", "rowing race", "sandcastle contest"]
        ),
        "trophy": g.c(["Silver Ladle", "Copper Oar", "Golden Kite", "Iron Anchor", "Lantern Cup", "Brass Bell"]),
        "stage": g.c(
            [
                "the old harbour wall",
                "a floating pontoon",
                "the market square",
                "the steps of the town hall",
                "a meadow beside the river",
            ]
        ),
        "food": food,
        "desc": desc,
        "street": g.c(["Quay Street", "Mill Lane", "Chapel Row", "Harbour Road", "Market Walk", "Rope Alley"]),
        "symbol": g.c(["sprig of juniper", "small brass bell", "blue ribbon", "dried starfish", "knot of straw"]),
        "cyear": g.year(1995, 2021),
        "charity": g.c(
            [
                "the local lifeboat crew",
                "the town's music school",
                "repairs to the old lighthouse",
                "the village library",
                "a youth sailing club",
            ]
        ),
    }


def en_festival_p1(g: G, f: dict) -> ParaOut:
    fe, fo = f["fest"], f["founder"]
    s = [
        g.p(
            f"The {fe} is an annual celebration held in the town of {f['town']}.",
            f"Every year the town of {f['town']} hosts the {fe}.",
            f"The {fe} takes place each year in {f['town']}.",
        ),
        g.p(
            f"It was first held in {f['year']}, when {fo.name}, a local {f['job']}, organised a small gathering "
            f"to mark the end of the {f['season']}.",
            f"The first edition took place in {f['year']}; it was organised by {fo.name}, a {f['job']}, to "
            f"celebrate the end of the {f['season']}.",
            f"{fo.name}, a {f['job']} from the town, started it in {f['year']} as a modest party marking the end "
            f"of the {f['season']}.",
        ),
        g.p(
            f"Today it lasts {f['days']} and attracts around {f['vis']} visitors.",
            f"Nowadays the festival runs for {f['days']} and draws about {f['vis']} guests.",
            f"The modern festival spans {f['days']}, with roughly {f['vis']} people attending.",
        ),
    ]
    qa = [
        (g.p(f"Where is the {fe} held?", f"Which town hosts the {fe}?"), f["town"]),
        (g.p(f"When was the {fe} first held?", f"In what year did the first {fe} take place?"), f["year"]),
        (g.p(f"Who organised the first {fe}?", f"Who started the {fe}?"), fo.name),
        (f"The end of what did the first {fe} celebrate?", f["season"]),
        (g.p(f"How long does the {fe} last today?", f"How many days does the {fe} run?"), f["days"]),
        (g.p(f"How many visitors does the {fe} attract?", f"About how many people attend the {fe}?"), f["vis"]),
    ]
    un = [
        f"How many people attended the first {fe}?",
        f"Who is the current director of the {fe}?",
        f"What was the {fe} originally called?",
        f"How much does a ticket to the {fe} cost?",
    ]
    return s, qa, un


def en_festival_p2(g: G, f: dict) -> ParaOut:
    fe = f["fest"]
    s = [
        g.p(
            f"The festival opens on the first {f['weekday']} of {f['month']} with a {f['opening']}.",
            f"Each edition begins on the first {f['weekday']} in {f['month']} with a {f['opening']}.",
            f"On the first {f['weekday']} of {f['month']}, a {f['opening']} marks the opening.",
        ),
        g.p(
            f"The main event is the {f['contest']}, in which teams compete for the {f['trophy']}.",
            f"Its best-known event is the {f['contest']}; the winning team receives the {f['trophy']}.",
            f"Crowds gather for the {f['contest']}, whose winners take home the {f['trophy']}.",
        ),
        g.p(
            f"On the final night, musicians play on a stage built on {f['stage']}.",
            f"Concerts on the last evening take place on {f['stage']}.",
            f"The closing concert is held on {f['stage']}.",
        ),
        g.p(
            "Local choirs and brass bands perform throughout the week.",
            "Street traders sell crafts and second-hand books.",
            "Children decorate the streets with paper garlands.",
        ),
    ]
    qa = [
        (g.p(f"In which month does the {fe} begin?", f"In what month is the {fe} held?"), f["month"]),
        (f"On which day of the week does the {fe} open?", f["weekday"]),
        (g.p(f"How does the {fe} open?", f"What marks the opening of the {fe}?"), f["opening"]),
        (g.p(f"What is the main event of the {fe}?", f"Which event is the best known at the {fe}?"), f["contest"]),
        (
            g.p(f"What do the winners of the {f['contest']} receive?", f"What trophy is awarded at the {fe}?"),
            f["trophy"],
        ),
        (
            g.p(f"Where is the final concert of the {fe} held?", "Where do musicians play on the last night?"),
            f["stage"],
        ),
    ]
    un = [
        f"Which team won the {f['contest']} last year?",
        f"How much does a ticket to the final concert of the {fe} cost?",
        f"Which band played at the first {fe}?",
        f"Who designed the {f['trophy']}?",
    ]
    return s, qa, un


def en_festival_p3(g: G, f: dict) -> ParaOut:
    fe = f["fest"]
    s = [
        g.p(
            f"No visit is complete without {f['food']}, a {f['desc']} sold at stalls along {f['street']}.",
            f"The traditional festival food is {f['food']}, a {f['desc']} sold along {f['street']}.",
            f"Stalls on {f['street']} sell {f['food']}, a {f['desc']} eaten only during the festival.",
        ),
        g.p(
            f"Visitors also wear a {f['symbol']} pinned to their coats for good luck.",
            f"Many guests wear a {f['symbol']}, which is said to bring luck for the coming year.",
            f"By tradition, everyone wears a {f['symbol']} as a sign of good fortune.",
        ),
        g.p(
            f"Since {f['cyear']}, part of the ticket income has been given to {f['charity']}.",
            f"From {f['cyear']} onwards, a share of the income has supported {f['charity']}.",
            f"The organisers have donated part of the profits to {f['charity']} since {f['cyear']}.",
        ),
    ]
    qa = [
        (g.p(f"What is the traditional food of the {fe}?", f"Which food is sold at the {fe}?"), f["food"]),
        (f"What kind of food are {f['food']}?", f["desc"]),
        (g.p(f"Where are {f['food']} sold during the {fe}?", f"On which street are {f['food']} sold?"), f["street"]),
        (g.p(f"What do visitors of the {fe} wear for good luck?", "What lucky charm do guests wear?"), f["symbol"]),
        (g.p(f"Who receives part of the income of the {fe}?", f"Which cause does the {fe} support?"), f["charity"]),
        (f"Since when has the {fe} given money to charity?", f["cyear"]),
    ]
    un = [
        f"Who invented {f['food']}?",
        f"How much does a portion of {f['food']} cost?",
        f"How much money has the {fe} donated in total?",
        f"Why is the {f['symbol']} thought to bring luck?",
    ]
    return s, qa, un


# --------------------------------------------------------------------------------------------------------------
# English: inventors
# --------------------------------------------------------------------------------------------------------------

EN_DEVICES = [
    ("tide clock", "shows how fast the tide is rising"),
    ("seed drill", "sows seeds in straight rows"),
    ("lamp regulator", "keeps a gas flame steady"),
    ("loom counter", "counts the rows a loom has woven"),
    ("frost alarm", "rings a bell when the air drops below freezing"),
    ("hive scale", "weighs a beehive without opening it"),
    ("kettle whistle", "sounds when water boils"),
    ("rain recorder", "draws a chart of the rainfall"),
]


def en_inventor_facts(g: G) -> dict:
    dev, does = g.c(EN_DEVICES)
    who = en_person(g)
    return {
        "who": who,
        "byear": g.year(1790, 1905),
        "village": en_town(g),
        "parent": g.c(["father", "mother"]),
        "pjob": g.c(["clockmaker", "carpenter", "weaver", "blacksmith", "bookbinder", "glazier"]),
        "age": str(g.n(15, 19)),
        "subject": g.c(["mechanics", "chemistry", "physics", "engineering", "mathematics"]),
        "college": en_town(g) + g.c([" Technical Institute", " College of Engineering", " Polytechnic"]),
        "dev": dev,
        "does": does,
        "iyear": None,
        "pyear": None,
        "partner": en_person(g),
        "dyear": None,
        "dplace": en_town(g),
        "prize": who.last + g.c([" Medal", " Prize", " Award"]),
        "interval": g.c(["two", "three", "four", "five"]),
        "ndraw": str(g.n(30, 600)),
    }


def _en_inventor_years(g: G, f: dict) -> None:
    b = int(f["byear"])
    f["iyear"] = g.year(b + 24, b + 40)
    f["pyear"] = g.year(int(f["iyear"]) + 1, int(f["iyear"]) + 4)
    f["dyear"] = g.year(b + 58, b + 88)


def en_inventor_facts_full(g: G) -> dict:
    f = en_inventor_facts(g)
    _en_inventor_years(g, f)
    return f


def en_inventor_p1(g: G, f: dict) -> ParaOut:
    w = f["who"]
    s = [
        g.p(
            f"{w.name} was born in {f['byear']} in the village of {f['village']}.",
            f"Born in {f['village']} in {f['byear']}, {w.name} grew up in a modest household.",
            f"The inventor {w.name} came into the world in {f['byear']}, in the village of {f['village']}.",
        ),
        g.p(
            f"{w.His} {f['parent']} worked as a {f['pjob']}, and young {w.first} spent many hours in the workshop.",
            f"{w.His} {f['parent']} was a {f['pjob']} who let the child help with small repairs.",
            f"As the child of a {f['pjob']}, {w.first} learned early how tools work; it was {w.his} "
            f"{f['parent']} who ran the workshop.",
        ),
        g.p(
            f"At the age of {f['age']}, {w.he} went to study {f['subject']} at the {f['college']}.",
            f"{w.He} later studied {f['subject']} at the {f['college']}, which {w.he} entered at {f['age']}.",
            f"When {w.he} was {f['age']}, {w.he} enrolled at the {f['college']} to study {f['subject']}.",
        ),
    ]
    qa = [
        (g.p(f"When was {w.name} born?", f"In what year was {w.name} born?"), f["byear"]),
        (g.p(f"Where was {w.name} born?", f"In which village was {w.name} born?"), f["village"]),
        (
            g.p(
                f"What was the occupation of {w.name}'s {f['parent']}?",
                f"What did {w.name}'s {f['parent']} do for a living?",
            ),
            f["pjob"],
        ),
        (g.p(f"What did {w.name} study?", f"Which subject did {w.name} study?"), f["subject"]),
        (g.p(f"Where did {w.name} study?", f"Which college did {w.name} attend?"), f["college"]),
        (f"How old was {w.name} when {w.he} began {w.his} studies?", f["age"]),
    ]
    un = [
        f"What was the name of {w.name}'s {f['parent']}?",
        f"How many siblings did {w.name} have?",
        f"When did {w.name} finish {w.his} studies?",
        f"Which teacher influenced {w.name} most?",
    ]
    return s, qa, un


def en_inventor_p2(g: G, f: dict) -> ParaOut:
    w, d = f["who"], f["dev"]
    s = [
        g.p(
            f"In {f['iyear']}, {w.name} built the first {d}, a device that {f['does']}.",
            f"{w.name}'s most important invention was the {d}, completed in {f['iyear']}; it {f['does']}.",
            f"The {d}, a device that {f['does']}, was finished by {w.name} in {f['iyear']}.",
        ),
        g.p(
            f"{w.He} received a patent for it in {f['pyear']}.",
            f"A patent was granted in {f['pyear']}.",
            f"The design was patented in {f['pyear']}.",
        ),
        g.p(
            f"Together with the merchant {f['partner'].name}, {w.he} founded a small firm to produce it.",
            f"{w.He} went into business with {f['partner'].name}, a merchant who paid for the first production.",
            f"Production was financed by {f['partner'].name}, a merchant who became {w.his} business partner.",
        ),
        g.p(
            "Early versions were heavy, but later models fitted on a table.",
            "The first customers were farmers and harbour masters.",
            "Within a few years, copies appeared in several countries.",
        ),
    ]
    qa = [
        (g.p(f"What did {w.name} invent?", f"What was {w.name}'s most important invention?"), d),
        (g.p(f"When was the first {d} built?", f"In what year did {w.name} complete the {d}?"), f["iyear"]),
        (f"What does the {d} do?", f["does"]),
        (g.p(f"When did {w.name} receive a patent for the {d}?", f"In what year was the {d} patented?"), f["pyear"]),
        (
            g.p(f"Who was {w.name}'s business partner?", f"Which merchant helped {w.name} produce the {d}?"),
            f["partner"].name,
        ),
    ]
    un = [
        f"How many {d}s were sold?",
        f"How much did the first {d} cost?",
        f"Who bought the first {d}?",
        f"How much money did {f['partner'].name} invest?",
    ]
    return s, qa, un


def en_inventor_p3(g: G, f: dict) -> ParaOut:
    w = f["who"]
    s = [
        g.p(
            f"{w.name} died in {f['dyear']} in {f['dplace']}.",
            f"{w.name} spent {w.his} last years in {f['dplace']}, where {w.he} died in {f['dyear']}.",
            f"In {f['dyear']}, {w.name} died at {w.his} home in {f['dplace']}.",
        ),
        g.p(
            f"The {f['prize']}, named in {w.his} honour, is awarded every {f['interval']} years to young engineers.",
            f"Young engineers can win the {f['prize']}, which carries {w.his} name, every {f['interval']} years.",
            f"{w.His} name lives on in the {f['prize']}, given to a young engineer every {f['interval']} years.",
        ),
        g.p(
            f"{w.His} old workshop is now a small museum that keeps {f['ndraw']} of {w.his} drawings.",
            f"A museum in the former workshop holds {f['ndraw']} of {w.his} original drawings.",
            f"{f['ndraw']} of {w.his} drawings are kept in a museum in the former workshop.",
        ),
        g.p(
            f"A street in {f['village']} is named after {w.name}.",
            f"Many of {w.his} notebooks are thought to be lost.",
            "School classes often visit the workshop.",
        ),
    ]
    qa = [
        (g.p(f"When did {w.name} die?", f"In what year did {w.name} die?"), f["dyear"]),
        (g.p(f"Where did {w.name} die?", f"Where did {w.name} spend {w.his} last years?"), f["dplace"]),
        (g.p(f"Which prize is named after {w.name}?", f"What award honours {w.name}?"), f["prize"]),
        (f"How often is the {f['prize']} awarded?", f"every {f['interval']} years"),
        (f"How many of {w.name}'s drawings does the museum keep?", f["ndraw"]),
    ]
    un = [
        f"Who was {w.name} married to?",
        f"Where is {w.name} buried?",
        f"Who won the first {f['prize']}?",
        f"When did the museum in {w.name}'s workshop open?",
    ]
    return s, qa, un


# --------------------------------------------------------------------------------------------------------------
# English: rivers
# --------------------------------------------------------------------------------------------------------------

EN_MOUNTAINS = [
    "Harrow Pike",
    "Greyback Fell",
    "Cold Knap",
    "Tor Ellin",
    "Mount Sellick",
    "Raven Crag",
    "Blackmoor Head",
    "High Quarrel",
    "Mount Addle",
    "Windle Edge",
]


def en_river_facts(g: G) -> dict:
    return {
        "river": g.w.draw(EN_RIVERS),
        "mountain": g.w.draw(EN_MOUNTAINS),
        "alt": g.fmt(g.n(420, 1350, 5)),
        "len": str(g.n(38, 260)),
        "mouth": g.c(["Lake Orrin", "the Sallow Sea", "the Bay of Tarn", "Lake Meldon", "the Grey Sound"]),
        "trib": g.w.draw(EN_RIVERS),
        "jtown": en_town(g),
        "cargo": g.c(["timber", "slate", "wool bales", "grain", "salt", "coal"]),
        "port": en_town(g),
        "lock": en_person(g).last,
        "lyear": g.year(1760, 1890),
        "users": g.c(["canoeists", "anglers", "pleasure boats", "rowing clubs"]),
        "fish": g.c(["brown trout", "grayling", "river lampreys", "silver eels", "barbel"]),
        "bird": g.c(["kingfishers", "grey herons", "sand martins", "dippers"]),
        "reserve": g.c(["Alder", "Otter", "Reedbank", "Willowmead", "Heronsgate"]) + " Meadows Nature Reserve",
        "ryear": g.year(1960, 2015),
        "rkm": str(g.n(5, 34)),
        "bridge": en_person(g).last + " Bridge",
        "arches": g.c(["three", "four", "five", "six", "seven", "nine"]),
    }


def en_river_p1(g: G, f: dict) -> ParaOut:
    r = f["river"]
    s = [
        g.p(
            f"The {r} rises on the slopes of {f['mountain']} at a height of {f['alt']} metres.",
            f"The source of the {r} lies on {f['mountain']}, {f['alt']} metres above sea level.",
            f"The {r} begins as a spring high on {f['mountain']}, at about {f['alt']} metres.",
        ),
        g.p(
            f"It flows for {f['len']} kilometres before emptying into {f['mouth']}.",
            f"After a course of {f['len']} kilometres it flows into {f['mouth']}.",
            f"Its course is {f['len']} kilometres long and ends in {f['mouth']}.",
        ),
        g.p(
            f"Its largest tributary is the {f['trib']}, which joins it near the town of {f['jtown']}.",
            f"Near {f['jtown']} it is joined by the {f['trib']}, its largest tributary.",
            f"The {f['trib']}, the biggest of its tributaries, meets it at {f['jtown']}.",
        ),
        g.p(
            "In spring the river often floods the low meadows.",
            "Its upper valley is narrow and steep.",
            "Much of its lower course winds through farmland.",
        ),
    ]
    qa = [
        (g.p(f"Where does the {r} rise?", f"On which mountain is the source of the {r}?"), f["mountain"]),
        (f"At what height is the source of the {r}?", f"{f['alt']} metres"),
        (g.p(f"How long is the {r}?", f"What is the length of the {r}?"), f"{f['len']} kilometres"),
        (g.p(f"Into what does the {r} flow?", f"Where does the {r} end?"), f["mouth"]),
        (
            g.p(f"What is the largest tributary of the {r}?", f"Which river is the biggest tributary of the {r}?"),
            f["trib"],
        ),
        (f"Near which town does the {f['trib']} join the {r}?", f["jtown"]),
    ]
    un = [
        f"How deep is the {r} at its mouth?",
        f"Who named the {r}?",
        f"How wide is the {r} at {f['jtown']}?",
        f"How long is the {f['trib']}?",
    ]
    return s, qa, un


def en_river_p2(g: G, f: dict) -> ParaOut:
    r, lk = f["river"], f["lock"]
    s = [
        g.p(
            f"In the past the {r} was used to carry {f['cargo']} downstream to {f['port']}.",
            f"For centuries barges carried {f['cargo']} along the {r} to the port of {f['port']}.",
            f"Boats once took {f['cargo']} down the {r} to the harbour at {f['port']}.",
        ),
        g.p(
            f"The {lk} Lock, built in {f['lyear']}, made the upper course navigable.",
            f"In {f['lyear']} the {lk} Lock was completed, opening the upper river to boats.",
            f"Only after the {lk} Lock was finished in {f['lyear']} could boats reach the upper river.",
        ),
        g.p(
            f"Today the river is used mainly by {f['users']}.",
            f"Nowadays the water is used mostly by {f['users']}.",
            f"These days the river belongs largely to {f['users']}.",
        ),
        g.p(
            "The old towpath has become a popular walking route.",
            "Several former warehouses along the banks are now homes.",
            "A few of the old barges are still moored near the bank.",
        ),
    ]
    qa = [
        (g.p(f"What was carried on the {r} in the past?", f"What cargo did boats once carry on the {r}?"), f["cargo"]),
        (
            g.p(f"To which port was cargo carried on the {r}?", f"Where did barges on the {r} take their cargo?"),
            f["port"],
        ),
        (g.p(f"When was the {lk} Lock built?", f"In what year was the {lk} Lock completed?"), f["lyear"]),
        (f"Which lock made the upper course of the {r} navigable?", f"{lk} Lock"),
        (g.p(f"Who uses the {r} today?", f"Who mainly uses the {r} nowadays?"), f["users"]),
    ]
    un = [
        f"How many barges used the {r} each year?",
        f"Who designed the {lk} Lock?",
        f"How long did it take to build the {lk} Lock?",
        f"When did the last cargo barge sail on the {r}?",
    ]
    return s, qa, un


def en_river_p3(g: G, f: dict) -> ParaOut:
    r, b = f["river"], f["bridge"]
    s = [
        g.p(
            f"The {r} is home to {f['fish']}, and {f['bird']} nest along its banks.",
            f"{f['fish'].capitalize()} live in the river, while {f['bird']} breed on its banks.",
            f"Anglers know the {r} for its {f['fish']}; birdwatchers come for the {f['bird']}.",
        ),
        g.p(
            f"Since {f['ryear']}, the {f['reserve']} has protected {f['rkm']} kilometres of the lower valley.",
            f"The {f['reserve']} was created in {f['ryear']} and covers {f['rkm']} kilometres of the valley.",
            f"In {f['ryear']}, {f['rkm']} kilometres of the valley became the {f['reserve']}.",
        ),
        g.p(
            f"The oldest crossing is the {b}, a stone bridge with {f['arches']} arches.",
            f"The river is crossed by the {b}, an old stone bridge of {f['arches']} arches.",
            f"Its oldest bridge, the {b}, rests on {f['arches']} stone arches.",
        ),
    ]
    qa = [
        (g.p(f"Which fish live in the {r}?", f"What fish is the {r} known for?"), f["fish"]),
        (g.p(f"Which birds nest along the {r}?", f"What birds breed on the banks of the {r}?"), f["bird"]),
        (
            g.p(f"Which nature reserve protects the valley of the {r}?", f"What protected area lies on the {r}?"),
            f["reserve"],
        ),
        (f"When was the {f['reserve']} created?", f["ryear"]),
        (f"How much of the valley does the {f['reserve']} cover?", f"{f['rkm']} kilometres"),
        (g.p(f"What is the oldest bridge over the {r}?", f"Which is the oldest crossing of the {r}?"), b),
        (f"How many arches does the {b} have?", f["arches"]),
    ]
    un = [
        f"When was the {b} built?",
        f"How many species of fish live in the {r}?",
        f"Who manages the {f['reserve']}?",
        f"How long is the {b}?",
    ]
    return s, qa, un


# --------------------------------------------------------------------------------------------------------------
# English: dishes
# --------------------------------------------------------------------------------------------------------------

EN_DISH_HEADS = [
    "Brannock",
    "Quillet",
    "Morrow",
    "Tansey",
    "Hobb",
    "Pellin",
    "Skirl",
    "Crannet",
    "Dowlas",
    "Fennick",
    "Hallan",
    "Kedge",
    "Lummock",
    "Nobble",
    "Pasket",
    "Wimble",
]
EN_DISH_TAILS = [" Pie", " Stew", " Buns", " Dumplings", " Broth", " Flatbread", " Pudding", " Tart"]
EN_INGREDIENTS = [
    "potatoes",
    "leeks",
    "smoked bacon",
    "barley",
    "oat flour",
    "sour cream",
    "mutton",
    "turnips",
    "dried pears",
    "hard cheese",
    "onions",
    "cabbage",
    "walnuts",
    "rye flour",
]


def en_dish_facts(g: G) -> dict:
    ing = g.sample(EN_INGREDIENTS, 3)
    return {
        "dish": g.w.compose(EN_DISH_HEADS, EN_DISH_TAILS),
        "town": en_town(g),
        "year": g.year(1640, 1910),
        "cook": en_person(g),
        "inn": "The "
        + g.c(["Crooked", "Blue", "Sleeping", "Golden", "Laughing", "Drowsy"])
        + " "
        + g.c(["Heron", "Lantern", "Badger", "Anchor", "Kettle", "Fiddle"]),
        "purpose": g.c(
            [
                "could be carried to the fields",
                "would keep for a week",
                "used up stale bread",
                "warmed the ferrymen in winter",
            ]
        ),
        "ing": f"{ing[0]}, {ing[1]} and {ing[2]}",
        "rest": str(g.n(10, 40, 5)),
        "temp": str(g.n(160, 220, 10)),
        "bake": str(g.n(45, 120, 5)),
        "secret": g.c(
            [
                "a spoonful of cider vinegar",
                "a pinch of dried nettle",
                "a little smoked salt",
                "a splash of dark ale",
                "grated horseradish",
            ]
        ),
        "side": g.c(["pickled red cabbage", "buttered greens", "a sharp apple sauce", "boiled beetroot"]),
        "drink": g.c(["cider", "buttermilk", "dark ale", "elderflower cordial"]),
        "region": g.c(EN_REGIONS),
        "extra": g.c(["caraway seeds", "chopped prunes", "fresh dill", "black pudding", "wild garlic"]),
        "cyear": g.year(1975, 2018),
        "prize": g.c(["wooden spoon painted gold", "copper pan", "silver whisk", "hand-carved bread board"]),
    }


def en_dish_p1(g: G, f: dict) -> ParaOut:
    d, c = f["dish"], f["cook"]
    s = [
        g.p(
            f"{d} is a traditional dish from the town of {f['town']}.",
            f"The town of {f['town']} is the home of {d}.",
            f"{d} comes from {f['town']}, where it is still cooked in most homes.",
        ),
        g.p(
            f"According to local tradition, it was first cooked in {f['year']} by {c.name}, who ran the inn "
            f"called {f['inn']}.",
            f"Local tradition says that {c.name}, keeper of the inn {f['inn']}, first made it in {f['year']}.",
            f"The first {d} is said to have been served in {f['year']} at {f['inn']}, an inn kept by {c.name}.",
        ),
        g.p(
            f"{c.He} wanted a filling meal that {f['purpose']}.",
            f"The aim was a cheap, filling meal that {f['purpose']}.",
            f"{c.name} needed a dish that {f['purpose']}.",
        ),
    ]
    qa = [
        (g.p(f"Where does {d} come from?", f"Which town is {d} from?"), f["town"]),
        (g.p(f"When was {d} first cooked?", f"In what year was {d} first made?"), f["year"]),
        (g.p(f"Who first cooked {d}?", f"Who is said to have invented {d}?"), c.name),
        (
            g.p(f"At which inn was {d} first served?", f"What was the name of the inn where {d} was first made?"),
            f["inn"],
        ),
    ]
    un = [
        f"How much did a plate of {d} cost at {f['inn']}?",
        f"When did {d} become popular outside {f['town']}?",
        f"Who wrote down the first recipe for {d}?",
        f"When did {f['inn']} close?",
    ]
    return s, qa, un


def en_dish_p2(g: G, f: dict) -> ParaOut:
    d = f["dish"]
    s = [
        g.p(
            f"The main ingredients of {d} are {f['ing']}.",
            f"{d} is made from {f['ing']}.",
            f"A classic {d} needs {f['ing']}.",
        ),
        g.p(
            f"After resting for {f['rest']} minutes, the mixture is baked at {f['temp']} degrees for about "
            f"{f['bake']} minutes.",
            f"The mixture rests for {f['rest']} minutes and then goes into the oven at {f['temp']} degrees for "
            f"{f['bake']} minutes.",
            f"Cooks let it stand for {f['rest']} minutes before baking it for {f['bake']} minutes at "
            f"{f['temp']} degrees.",
        ),
        g.p(
            f"Cooks in {f['town']} swear that {f['secret']} is the secret of a good result.",
            f"Many families add {f['secret']}, which they call the secret ingredient.",
            f"The secret, locals say, is {f['secret']}.",
        ),
        g.p(
            "It tastes even better on the second day.",
            "Leftovers are often fried for breakfast.",
            "Each family guards its own version of the recipe.",
        ),
    ]
    qa = [
        (g.p(f"What are the main ingredients of {d}?", f"What is {d} made from?"), f["ing"]),
        (g.p(f"At what temperature is {d} baked?", f"How hot should the oven be for {d}?"), f"{f['temp']} degrees"),
        (g.p(f"How long is {d} baked?", f"For how long does {d} stay in the oven?"), f"{f['bake']} minutes"),
        (f"How long does the mixture for {d} rest before baking?", f"{f['rest']} minutes"),
        (g.p(f"What is the secret ingredient of {d}?", f"What is said to be the secret of a good {d}?"), f["secret"]),
    ]
    un = [
        f"How many calories does a portion of {d} contain?",
        f"How many people does one batch of {d} serve?",
        f"What kind of dish is {d} baked in?",
        f"How long does {d} keep in the cellar?",
    ]
    return s, qa, un


def en_dish_p3(g: G, f: dict) -> ParaOut:
    d = f["dish"]
    s = [
        g.p(
            f"{d} is usually served with {f['side']} and a glass of {f['drink']}.",
            f"It is eaten with {f['side']}, and many people drink {f['drink']} with it.",
            f"The usual side dish is {f['side']}, and the usual drink is {f['drink']}.",
        ),
        g.p(
            f"A variant from the {f['region']} region adds {f['extra']}.",
            f"In the {f['region']} region, cooks also add {f['extra']}.",
            f"Families in the {f['region']} region prefer a version with {f['extra']}.",
        ),
        g.p(
            f"Since {f['cyear']} the town has held a yearly cook-off, and the winner receives a {f['prize']}.",
            f"A cook-off has taken place every year since {f['cyear']}; the prize is a {f['prize']}.",
            f"The best cook at the annual contest, held since {f['cyear']}, wins a {f['prize']}.",
        ),
    ]
    qa = [
        (g.p(f"What is {d} usually served with?", f"Which side dish goes with {d}?"), f["side"]),
        (g.p(f"What is usually drunk with {d}?", f"Which drink goes with {d}?"), f["drink"]),
        (f"Which region makes a variant of {d}?", f["region"]),
        (
            g.p(f"What does the regional variant of {d} add?", "Which extra ingredient is used in the variant?"),
            f["extra"],
        ),
        (g.p(f"Since when has the {d} cook-off been held?", f"When did the yearly {d} cook-off start?"), f["cyear"]),
        (g.p(f"What does the winner of the {d} cook-off receive?", "What is the prize of the cook-off?"), f["prize"]),
    ]
    un = [
        f"Who won the last {d} cook-off?",
        f"How many cooks enter the {d} cook-off each year?",
        f"Who judges the {d} cook-off?",
        f"In which month is the {d} cook-off held?",
    ]
    return s, qa, un


# --------------------------------------------------------------------------------------------------------------
# English: sports clubs
# --------------------------------------------------------------------------------------------------------------

EN_CLUB_KINDS = [
    (" Rovers", "football"),
    (" Athletic", "football"),
    (" Wanderers", "rugby"),
    (" Hockey Club", "hockey"),
    (" Cricket Club", "cricket"),
    (" United", "football"),
]


def en_club_facts(g: G) -> dict:
    suffix, sport = g.c(EN_CLUB_KINDS)
    town = en_town(g)
    c1, c2 = g.sample(["green", "white", "black", "amber", "maroon", "sky blue", "navy", "gold"], 2)
    return {
        "club": town + suffix,
        "sport": sport,
        "year": g.year(1872, 1952),
        "founders": g.c(
            ["railway workers", "students", "dock workers", "brewery workers", "church choir members", "quarrymen"]
        ),
        "colours": f"{c1} and {c2}",
        "origin": g.c(
            [
                "the flag of the old harbour",
                "the sign of a local brewery",
                "the town's coat of arms",
                "the uniforms of the fire brigade",
            ]
        ),
        "nick": g.c(
            [
                "the Herons",
                "the Millers",
                "the Lamplighters",
                "the Ropers",
                "the Badgers",
                "the Tinkers",
                "the Owls",
                "the Quarrymen",
            ]
        ),
        "ground": en_person(g).last + " Park",
        "cap": g.fmt(g.n(1200, 14000, 50)),
        "gyear": None,
        "donor": en_person(g),
        "stand": g.c(["covered north stand", "new clubhouse", "set of floodlights", "terrace behind the goal"]),
        "syear": None,
        "league": g.c(EN_REGIONS) + g.c([" League", " Cup", " Shield"]),
        "titles": g.c(EN_NUMWORDS),
        "lyear": g.year(1990, 2023),
        "coach": en_person(g),
        "pos": g.c(["captain", "player", "youth coach"]),
        "rival": en_town(g) + g.c([" Town", " City", " Albion"]),
        "derby": g.c(["Valley", "Salt", "Bridge", "River", "Moor", "Quarry"]) + " Derby",
    }


def en_club_facts_full(g: G) -> dict:
    f = en_club_facts(g)
    f["gyear"] = g.year(int(f["year"]) + 1, int(f["year"]) + 30)
    f["syear"] = g.year(1960, 2019)
    return f


def en_club_p1(g: G, f: dict) -> ParaOut:
    c = f["club"]
    s = [
        g.p(
            f"{c} is a {f['sport']} club founded in {f['year']} by a group of {f['founders']}.",
            f"A group of {f['founders']} founded {c}, a {f['sport']} club, in {f['year']}.",
            f"The {f['sport']} club {c} was started in {f['year']} by {f['founders']}.",
        ),
        g.p(
            f"The team plays in {f['colours']}, colours taken from {f['origin']}.",
            f"Its colours, {f['colours']}, were borrowed from {f['origin']}.",
            f"The club's {f['colours']} shirts recall {f['origin']}.",
        ),
        g.p(
            f'Supporters call the team "{f["nick"]}".',
            f'The team\'s nickname is "{f["nick"]}".',
            f'Fans know the players as "{f["nick"]}".',
        ),
        g.p(
            "Membership is open to anyone over the age of eight.",
            "The club also runs teams for boys and girls.",
            "Its youth section is one of the largest in the area.",
        ),
    ]
    qa = [
        (g.p(f"When was {c} founded?", f"In what year was {c} started?"), f["year"]),
        (g.p(f"Who founded {c}?", f"Which group founded {c}?"), f["founders"]),
        (g.p(f"What sport does {c} play?", f"What kind of sports club is {c}?"), f["sport"]),
        (g.p(f"What are the colours of {c}?", f"In which colours does {c} play?"), f["colours"]),
        (f"Where do the colours of {c} come from?", f["origin"]),
        (g.p(f"What is the nickname of {c}?", f"What do supporters call {c}?"), f["nick"]),
    ]
    un = [
        f"Who was the first captain of {c}?",
        f"Who was the first president of {c}?",
        f"How many members does {c} have?",
        f"Who designed the badge of {c}?",
    ]
    return s, qa, un


def en_club_p2(g: G, f: dict) -> ParaOut:
    c, gr = f["club"], f["ground"]
    s = [
        g.p(
            f"Home matches are played at {gr}, which holds {f['cap']} spectators.",
            f"The club's home ground is {gr}, with room for {f['cap']} spectators.",
            f"{gr}, the home of {c}, can hold {f['cap']} people.",
        ),
        g.p(
            f"The ground was opened in {f['gyear']} on land given by {f['donor'].name}, a local farmer.",
            f"It opened in {f['gyear']} on a field donated by the farmer {f['donor'].name}.",
            f"The farmer {f['donor'].name} gave the land, and the ground opened in {f['gyear']}.",
        ),
        g.p(
            f"A {f['stand']} was added in {f['syear']}.",
            f"In {f['syear']} the club added a {f['stand']}.",
            f"The most recent improvement, a {f['stand']}, dates from {f['syear']}.",
        ),
        g.p(
            "On match days the nearby streets fill with supporters.",
            "A small bar under the stand is run by volunteers.",
            "The pitch is known for being muddy in winter.",
        ),
    ]
    qa = [
        (g.p(f"Where does {c} play its home matches?", f"What is the home ground of {c}?"), gr),
        (g.p(f"How many spectators does {gr} hold?", f"What is the capacity of {gr}?"), f["cap"]),
        (g.p(f"When was {gr} opened?", f"In what year did {gr} open?"), f["gyear"]),
        (g.p(f"Who gave the land for {gr}?", f"Who donated the field on which {gr} was built?"), f["donor"].name),
        (f"What was added to {gr} in {f['syear']}?", f["stand"]),
    ]
    un = [
        f"What was the record attendance at {gr}?",
        f"How much did the {f['stand']} cost?",
        f"Who designed {gr}?",
        f"What was the first match played at {gr}?",
    ]
    return s, qa, un


def en_club_p3(g: G, f: dict) -> ParaOut:
    c, co = f["club"], f["coach"]
    s = [
        g.p(
            f"{c} has won the {f['league']} {f['titles']} times, most recently in {f['lyear']}.",
            f"The club has lifted the {f['league']} {f['titles']} times; its latest title came in {f['lyear']}.",
            f"Its record includes {f['titles']} wins of the {f['league']}, the last of them in {f['lyear']}.",
        ),
        g.p(
            f"The team is coached by {co.name}, a former {f['pos']} of the club.",
            f"{co.name}, once the club's {f['pos']}, is now the coach.",
            f"The current coach is {co.name}, who used to be the club's {f['pos']}.",
        ),
        g.p(
            f"Its fiercest rival is {f['rival']}, and matches between the two are known as the {f['derby']}.",
            f"Games against {f['rival']}, the old rival, are called the {f['derby']}.",
            f"The {f['derby']} against {f['rival']} is the match of the season.",
        ),
    ]
    qa = [
        (g.p(f"Which competition has {c} won?", f"What title has {c} won several times?"), f["league"]),
        (f"How many times has {c} won the {f['league']}?", f["titles"]),
        (g.p(f"When did {c} last win the {f['league']}?", f"In what year was the latest title of {c}?"), f["lyear"]),
        (g.p(f"Who coaches {c}?", f"Who is the coach of {c}?"), co.name),
        (g.p(f"Who is the main rival of {c}?", f"Which club is the fiercest rival of {c}?"), f["rival"]),
        (f"What are matches between {c} and {f['rival']} called?", f["derby"]),
    ]
    un = [
        f"Who was the captain of {c} in {f['lyear']}?",
        f"What was the result of the last {f['derby']}?",
        f"When did {co.name} become coach of {c}?",
        f"Who was the top scorer of {c} last season?",
    ]
    return s, qa, un


# --------------------------------------------------------------------------------------------------------------
# English: scientific instruments
# --------------------------------------------------------------------------------------------------------------

EN_INSTRUMENTS = [
    ("hygroscope", "the moisture in the air"),
    ("tidemeter", "the height of the tide"),
    ("frost pendulum", "how deep frost has entered the ground"),
    ("drift compass", "the speed of ocean currents"),
    ("sap gauge", "the flow of sap in trees"),
    ("cloud mirror", "the height of clouds"),
    ("dew balance", "the weight of morning dew"),
    ("sound funnel", "the loudness of distant thunder"),
]


def en_instrument_facts(g: G) -> dict:
    kind, what = g.c(EN_INSTRUMENTS)
    inventor = en_person(g)
    return {
        "inst": f"{inventor.last} {kind}",
        "kind": kind,
        "what": what,
        "material": g.c(["brass", "walnut", "copper", "pewter", "oak", "glass"]),
        "divs": str(g.n(20, 200, 10)),
        "acc": g.c(["two", "three", "four", "five"]) + " per cent",
        "year": g.year(1740, 1900),
        "inventor": inventor,
        "job": g.c(["lens grinder", "schoolmaster", "ship's surgeon", "clockmaker", "apothecary"]),
        "city": en_town(g),
        "street": g.c(["Tanner Street", "Bell Lane", "Canal Row", "Cooper's Yard", "North Walk"]),
        "users": g.c(["lighthouse keepers", "farmers", "brewers", "harbour masters", "foresters"]),
        "museum": g.c(
            [
                "Museum of Measuring Instruments",
                "Collection of Natural Philosophy",
                "Hall of Early Science",
                "Instrument Makers' Museum",
            ]
        ),
        "city2": en_town(g),
        "decade": g.c(["1950s", "1960s", "1970s", "1930s"]),
        "price": g.fmt(g.n(800, 25000, 50)),
    }


def en_instrument_p1(g: G, f: dict) -> ParaOut:
    i = f["inst"]
    s = [
        g.p(
            f"The {i} is an instrument for measuring {f['what']}.",
            f"The {i} measures {f['what']}.",
            f"With the {i}, observers can measure {f['what']}.",
        ),
        g.p(
            f"Its main parts are a {f['material']} drum, a pointer and a scale divided into {f['divs']} steps.",
            f"It consists of a {f['material']} drum and a pointer that moves over a scale of {f['divs']} steps.",
            f"A pointer turns above a {f['material']} drum and reads off a scale with {f['divs']} steps.",
        ),
        g.p(
            f"A careful reading is accurate to within {f['acc']}.",
            f"Used with care, it is accurate to within {f['acc']}.",
            f"Its readings are usually correct to within {f['acc']}.",
        ),
        g.p(
            "The scale has to be checked against a standard every spring.",
            "It must be kept level and out of direct sunlight.",
            "A small key is used to wind the drum once a day.",
        ),
    ]
    qa = [
        (g.p(f"What does the {i} measure?", f"What is the {i} used to measure?"), f["what"]),
        (g.p(f"What material is the drum of the {i} made of?", f"Of what is the drum of the {i} made?"), f["material"]),
        (f"How many steps does the scale of the {i} have?", f["divs"]),
        (g.p(f"How accurate is the {i}?", f"To within what margin is a reading of the {i} accurate?"), f["acc"]),
    ]
    un = [
        f"How much does a {i} weigh?",
        f"How much did a {i} cost when new?",
        f"How long does one reading of the {i} take?",
        f"How tall is the {i}?",
    ]
    return s, qa, un


def en_instrument_p2(g: G, f: dict) -> ParaOut:
    i, w = f["inst"], f["inventor"]
    s = [
        g.p(
            f"The {i} was invented in {f['year']} by {w.name}, a {f['job']} from {f['city']}.",
            f"{w.name}, a {f['job']} living in {f['city']}, designed it in {f['year']}.",
            f"The instrument goes back to {w.name}, a {f['job']} in {f['city']}, who invented it in {f['year']}.",
        ),
        g.p(
            f"{w.He} built the first model in {w.his} workshop on {f['street']}.",
            f"The first model was made in a small workshop on {f['street']}.",
            f"{w.His} workshop on {f['street']} produced the first example.",
        ),
        g.p(
            f"Within a few years it was widely used by {f['users']}.",
            f"Soon it became a common tool among {f['users']}.",
            f"Its most loyal users were {f['users']}.",
        ),
        g.p(
            "Early examples were made to order and took weeks to finish.",
            "Its simple design made it cheap to build and easy to repair.",
            "Copies soon appeared in the catalogues of several instrument makers.",
        ),
    ]
    qa = [
        (g.p(f"When was the {i} invented?", f"In what year was the {i} designed?"), f["year"]),
        (g.p(f"Who invented the {i}?", f"Who designed the {i}?"), w.name),
        (g.p(f"What was the profession of {w.name}?", f"What did {w.name} do for a living?"), f["job"]),
        (g.p(f"In which town did {w.name} live?", f"Where was the inventor of the {i} from?"), f["city"]),
        (f"On which street was the first {i} built?", f["street"]),
        (g.p(f"Who used the {i} most widely?", f"Which group adopted the {i}?"), f["users"]),
    ]
    un = [
        f"How many instruments did {w.name} build?",
        f"Who was the apprentice of {w.name}?",
        f"When did {w.name} die?",
        f"Where did {w.name} learn {w.his} trade?",
    ]
    return s, qa, un


def en_instrument_p3(g: G, f: dict) -> ParaOut:
    i = f["inst"]
    s = [
        g.p(
            f"The original {i} is kept in the {f['museum']} in {f['city2']}.",
            f"Visitors can see the original in the {f['museum']}, which is in {f['city2']}.",
            f"In {f['city2']}, the {f['museum']} displays the original instrument.",
        ),
        g.p(
            f"Electronic sensors replaced it in the {f['decade']}.",
            f"It was replaced by electronic sensors in the {f['decade']}.",
            f"In the {f['decade']}, electronic devices took its place.",
        ),
        g.p(
            f"Collectors today pay up to {f['price']} crowns for a working example.",
            f"A working example can fetch as much as {f['price']} crowns at auction.",
            f"Working examples sell for up to {f['price']} crowns.",
        ),
        g.p(
            "Some schools still use copies to teach the principles of measurement.",
            "Restorers often have to replace the fragile pointer.",
            "Few examples still have their original case.",
        ),
    ]
    qa = [
        (g.p(f"Where is the original {i} kept?", f"Which museum holds the original {i}?"), f["museum"]),
        (f"In which town is the original {i} displayed?", f["city2"]),
        (
            g.p(f"When was the {i} replaced by electronic sensors?", f"In which decade did the {i} fall out of use?"),
            f["decade"],
        ),
        (
            g.p(f"How much do collectors pay for a working {i}?", f"What can a working {i} sell for?"),
            f"{f['price']} crowns",
        ),
    ]
    un = [
        f"How many original examples of the {i} survive?",
        f"Who gave the original {i} to the museum?",
        f"When did the {f['museum']} open?",
        f"Who bought the most expensive {i}?",
    ]
    return s, qa, un


# --------------------------------------------------------------------------------------------------------------
# English: islands
# --------------------------------------------------------------------------------------------------------------

EN_ISLE_HEADS = [
    "Skerr",
    "Holm",
    "Inchmar",
    "Lunde",
    "Tarrin",
    "Fenna",
    "Brisk",
    "Corran",
    "Mallow",
    "Ossel",
    "Wrack",
    "Selkie",
]
EN_ISLE_TAILS = [" Island", "ay Island", " Isle"]


def en_island_facts(g: G) -> dict:
    return {
        "isle": g.w.compose(EN_ISLE_HEADS, EN_ISLE_TAILS),
        "dist": str(g.n(3, 40)),
        "region": g.c(EN_REGIONS),
        "area": str(g.n(4, 60)),
        "hill": g.c(["Beacon Hill", "Cairn Top", "the Knoll", "Watch Hill", "Gull Point"]),
        "height": str(g.n(60, 310)),
        "pop": str(g.n(40, 900)),
        "village": en_town(g),
        "port": en_town(g),
        "mins": str(g.n(25, 110, 5)),
        "freq": g.c(["twice a day", "three times a week", "once a day", "four times a week"]),
        "owner": g.c(["harbour master", "doctor", "postmaster", "lighthouse trust"]),
        "lyear": g.year(1790, 1899),
        "ayear": g.year(1955, 1999),
        "pairs": g.fmt(g.n(300, 9000, 50)),
        "bird": g.c(["puffins", "razorbills", "kittiwakes", "guillemots", "gannets"]),
    }


def en_island_p1(g: G, f: dict) -> ParaOut:
    i = f["isle"]
    s = [
        g.p(
            f"{i} lies {f['dist']} kilometres off the coast of the {f['region']} region.",
            f"Some {f['dist']} kilometres off the {f['region']} coast lies {i}.",
            f"{i} is found {f['dist']} kilometres from the mainland coast of the {f['region']} region.",
        ),
        g.p(
            f"It covers {f['area']} square kilometres, and its highest point, {f['hill']}, rises to "
            f"{f['height']} metres.",
            f"The island has an area of {f['area']} square kilometres; {f['hill']}, its highest point, is "
            f"{f['height']} metres high.",
            f"Its {f['area']} square kilometres rise to {f['height']} metres at {f['hill']}, the highest point.",
        ),
        g.p(
            f"About {f['pop']} people live there all year, most of them in the village of {f['village']}.",
            f"The island has around {f['pop']} permanent residents, most of whom live in {f['village']}.",
            f"Of its roughly {f['pop']} inhabitants, most live in the village of {f['village']}.",
        ),
    ]
    qa = [
        (
            g.p(f"How far from the coast is {i}?", f"How many kilometres off the coast does {i} lie?"),
            f"{f['dist']} kilometres",
        ),
        (g.p(f"Off the coast of which region does {i} lie?", f"Which region's coast is {i} near?"), f["region"]),
        (g.p(f"How large is {i}?", f"What is the area of {i}?"), f"{f['area']} square kilometres"),
        (g.p(f"What is the highest point of {i}?", f"Which hill is the highest on {i}?"), f["hill"]),
        (f"How high is the highest point of {i}?", f"{f['height']} metres"),
        (g.p(f"How many people live on {i}?", f"What is the population of {i}?"), f["pop"]),
        (g.p(f"Where do most people on {i} live?", f"What is the main village on {i}?"), f["village"]),
    ]
    un = [
        f"How long is the coastline of {i}?",
        f"When was {i} first settled?",
        f"What is the average temperature on {i}?",
        f"Who owns {i}?",
    ]
    return s, qa, un


def en_island_p2(g: G, f: dict) -> ParaOut:
    i = f["isle"]
    s = [
        g.p(
            f"A ferry from {f['port']} reaches the island in {f['mins']} minutes.",
            f"The crossing from {f['port']} takes {f['mins']} minutes by ferry.",
            f"Ferries leave from {f['port']}, and the trip takes about {f['mins']} minutes.",
        ),
        g.p(
            f"In winter the boat sails only {f['freq']}.",
            f"During the winter months it runs just {f['freq']}.",
            f"From November to March, the ferry operates only {f['freq']}.",
        ),
        g.p(
            f"There are no cars on the island apart from a tractor belonging to the {f['owner']}.",
            f"Cars are not allowed; the only motor vehicle is a tractor owned by the {f['owner']}.",
            f"The only vehicle on the island is a tractor used by the {f['owner']}.",
        ),
        g.p(
            "Visitors explore the island on foot or by bicycle.",
            "Supplies arrive on the ferry in wooden crates.",
            "Storms sometimes cut the island off for days.",
        ),
    ]
    qa = [
        (g.p(f"From where does the ferry to {i} leave?", f"Which port has a ferry to {i}?"), f["port"]),
        (
            g.p(f"How long does the ferry to {i} take?", f"How long is the ferry crossing to {i}?"),
            f"{f['mins']} minutes",
        ),
        (g.p(f"How often does the ferry to {i} sail in winter?", "How often does the boat run in winter?"), f["freq"]),
        (g.p(f"Who owns the only tractor on {i}?", f"To whom does the tractor on {i} belong?"), f["owner"]),
    ]
    un = [
        f"How much does a ferry ticket to {i} cost?",
        f"What is the name of the ferry to {i}?",
        f"How often does the ferry to {i} sail in summer?",
        f"When did the ferry service to {i} begin?",
    ]
    return s, qa, un


def en_island_p3(g: G, f: dict) -> ParaOut:
    i = f["isle"]
    s = [
        g.p(
            f"The lighthouse on the northern cape was built in {f['lyear']} and was run by keepers until "
            f"{f['ayear']}, when it became automatic.",
            f"Built in {f['lyear']}, the lighthouse on the northern cape had keepers until it was automated in "
            f"{f['ayear']}.",
            f"Keepers lived in the lighthouse from its construction in {f['lyear']} until automation in {f['ayear']}.",
        ),
        g.p(
            f"The cliffs below it are home to about {f['pairs']} pairs of {f['bird']}.",
            f"Around {f['pairs']} pairs of {f['bird']} breed on the cliffs below.",
            f"Below the light, some {f['pairs']} pairs of {f['bird']} nest on the cliffs.",
        ),
        g.p(
            "In summer, boat trips take visitors close to the colony.",
            "A small hut near the cliffs is used by bird counters.",
            "Visitors are asked to keep to the marked paths in the breeding season.",
        ),
    ]
    qa = [
        (g.p(f"When was the lighthouse on {i} built?", f"In what year was the lighthouse on {i} built?"), f["lyear"]),
        (
            g.p(f"When did the lighthouse on {i} become automatic?", "Until when did keepers run the lighthouse?"),
            f["ayear"],
        ),
        (g.p(f"Which birds nest on the cliffs of {i}?", "What seabirds breed below the lighthouse?"), f["bird"]),
        (f"How many pairs of {f['bird']} breed on {i}?", f["pairs"]),
    ]
    un = [
        f"Who was the last lighthouse keeper on {i}?",
        f"How tall is the lighthouse on {i}?",
        f"How far can the light of the lighthouse on {i} be seen?",
        f"When were the {f['bird']} on {i} first counted?",
    ]
    return s, qa, un


EN_TYPES = [
    ArticleType("town", en_town_facts, lambda f: f["town"], [en_town_p1, en_town_p2, en_town_p3]),
    ArticleType("company", en_company_facts, lambda f: f["co"], [en_company_p1, en_company_p2, en_company_p3]),
    ArticleType("festival", en_festival_facts, lambda f: f["fest"], [en_festival_p1, en_festival_p2, en_festival_p3]),
    ArticleType(
        "inventor", en_inventor_facts_full, lambda f: f["who"].name, [en_inventor_p1, en_inventor_p2, en_inventor_p3]
    ),
    ArticleType("river", en_river_facts, lambda f: f"River {f['river']}", [en_river_p1, en_river_p2, en_river_p3]),
    ArticleType("dish", en_dish_facts, lambda f: f["dish"], [en_dish_p1, en_dish_p2, en_dish_p3]),
    ArticleType("club", en_club_facts_full, lambda f: f["club"], [en_club_p1, en_club_p2, en_club_p3]),
    ArticleType(
        "instrument",
        en_instrument_facts,
        lambda f: f"{f['inst'][0].upper()}{f['inst'][1:]}",
        [en_instrument_p1, en_instrument_p2, en_instrument_p3],
    ),
    ArticleType("island", en_island_facts, lambda f: f["isle"], [en_island_p1, en_island_p2, en_island_p3]),
]


# ==============================================================================================================
# German templates: see below (DE_TYPES)
# ==============================================================================================================


# --------------------------------------------------------------------------------------------------------------
# German name pools (all invented)
# --------------------------------------------------------------------------------------------------------------

DE_FIRST = [
    ("Anneliese", True),
    ("Bertold", False),
    ("Cäcilie", True),
    ("Dietmar", False),
    ("Edeltraud", True),
    ("Friedhelm", False),
    ("Gesine", True),
    ("Hartmut", False),
    ("Irmgard", True),
    ("Jörg", False),
    ("Käthe", True),
    ("Lothar", False),
    ("Margarete", True),
    ("Notker", False),
    ("Ottilie", True),
    ("Rüdiger", False),
    ("Roswitha", True),
    ("Siegbert", False),
    ("Theresia", True),
    ("Ulrich", False),
    ("Wiebke", True),
    ("Jürgen", False),
    ("Hedwig", True),
    ("Björn", False),
]
DE_LAST = [
    "Ahlgrimm",
    "Bößel",
    "Brämer",
    "Claußen",
    "Dittloff",
    "Dörflinger",
    "Dreßler",
    "Eichstädt",
    "Fahlbusch",
    "Feldhügel",
    "Fußhöller",
    "Gießler",
    "Grüneisen",
    "Häberle",
    "Hülsmann",
    "Iserloh",
    "Jäckel",
    "Kammerloh",
    "Kößler",
    "Lindenblatt",
    "Löwentritt",
    "Mehltretter",
    "Mühlbauer",
    "Nießen",
    "Oberhäuser",
    "Ochsenkühn",
    "Pfannkuch",
    "Quast",
    "Reißmann",
    "Rößner",
    "Sauerbier",
    "Schäufele",
    "Süßmilch",
    "Thümmler",
    "Tröger",
    "Unverzagt",
    "Vögtle",
    "Voßkamp",
    "Wittkötter",
    "Wüstenhagen",
    "Zöllner",
    "Zschörner",
    "Amsberger",
    "Bredemeier",
    "Dahlgrün",
    "Eggerding",
    "Fröhlke",
    "Gotthardt",
    "Hesselbarth",
    "Immenkötter",
    "Jungblut",
    "Kreußler",
    "Langbehn",
    "Mörtl",
    "Nöthling",
    "Pöhlmann",
    "Riedesser",
    "Schwertfeger",
    "Tiedemann",
    "Uhlendorff",
    "Weißgerber",
    "Ziegenhals",
    "Baumgärtl",
    "Dürrschmidt",
    "Glöckner",
    "Höfling",
    "Kürten",
    "Ahrendsen",
    "Böttjer",
    "Dünnebier",
    "Eßlinger",
    "Fleischhauer",
    "Gümbel",
    "Hölscher",
    "Jöckel",
    "Klützke",
    "Lößner",
    "Möllenkamp",
    "Närger",
    "Pütter",
    "Rübsam",
    "Schnäbele",
    "Töpperwien",
    "Wäschle",
    "Zimmerlein",
]
DE_TOWN_HEADS = [
    "Brümmel",
    "Gärsel",
    "Wöllen",
    "Ruckel",
    "Tannel",
    "Quarn",
    "Fennig",
    "Mürzel",
    "Hesseln",
    "Ottel",
    "Bögel",
    "Dörrn",
    "Kiebel",
    "Lüttel",
    "Röml",
    "Trümm",
    "Ulbers",
    "Haspel",
    "Kolm",
    "Sprötz",
    "Welk",
    "Nöll",
]
DE_TOWN_TAILS = ["hausen", "feld", "dorf", "heim", "ingen", "rode", "stedt", "brück", "au", "wang"]
DE_REGIONS = [
    "Hollerland",
    "Grünmark",
    "Haselgau",
    "Sandheide",
    "Moorwinkel",
    "Silberbergland",
    "Rabenhöhe",
    "Ostwiesen",
    "Kranzgau",
    "Eulengrund",
]
DE_RIVERS = [  # all feminine: "die Wörnel", "an der Wörnel"
    "Wörnel",
    "Schlüpe",
    "Aumel",
    "Gösse",
    "Lühne",
    "Quenz",
    "Sälde",
    "Tusse",
    "Brame",
    "Dülme",
    "Fiesel",
    "Kimmel",
    "Lörze",
    "Mödel",
    "Pösel",
    "Rüse",
    "Ulse",
    "Wesse",
    "Härle",
    "Steinitze",
]
DE_MONTHS = [
    "Januar",
    "Februar",
    "März",
    "April",
    "Mai",
    "Juni",
    "Juli",
    "August",
    "September",
    "Oktober",
    "November",
    "Dezember",
]
DE_FEST_HEADS = [
    "Laternen",
    "Kürbis",
    "Möwen",
    "Holunder",
    "Reiher",
    "Kupfer",
    "Gersten",
    "Distel",
    "Treibholz",
    "Weiden",
    "Herings",
    "Zwiebel",
    "Brunnen",
    "Flößer",
    "Schäfer",
    "Krähen",
    "Wacholder",
    "Glocken",
    "Hopfen",
    "Rüben",
    "Bernstein",
    "Muschel",
    "Schwalben",
    "Kranich",
]


def de_town(g: G) -> str:
    return g.w.compose(DE_TOWN_HEADS, DE_TOWN_TAILS)


def de_person(g: G) -> Person:
    return g.w.person(DE_FIRST, DE_LAST)


def de_fest(g: G) -> str:
    return g.w.compose(DE_FEST_HEADS, ["fest"])


def de_gen(name: str) -> str:
    """Saxon genitive: "Jörg Kößlers", "Wiebke Claußens", "Lothar Quasts", but "Björn Voß'"."""
    return name + ("'" if name[-1] in "sßxz" else "s")


def gendered(p: Person, male: str, female: str) -> str:
    return female if p.female else male


# --------------------------------------------------------------------------------------------------------------
# German: towns
# --------------------------------------------------------------------------------------------------------------


def de_town_facts(g: G) -> dict:
    founder = de_person(g)
    return {
        "town": de_town(g),
        "kind": g.c(["Marktstadt", "Hafenstadt", "Fachwerkstadt", "Brückenstadt", "Bergstadt"]),
        "region": g.c(DE_REGIONS),
        "river": g.w.draw(DE_RIVERS),
        "founder": founder,
        "job": gendered(
            founder,
            *g.c(
                [
                    ("Tuchhändler", "Tuchhändlerin"),
                    ("Müller", "Müllerin"),
                    ("Schmied", "Schmiedin"),
                    ("Salzhändler", "Salzhändlerin"),
                    ("Steinmetz", "Steinmetzin"),
                    ("Fischer", "Fischerin"),
                ]
            ),
        ),
        "bldg": g.c(["eine Wassermühle", "ein Gasthaus", "eine hölzerne Brücke", "eine Kapelle", "ein Lagerhaus"]),
        "year": g.year(1150, 1690),
        "ind": g.c(["Weberei", "Töpferei", "Seilerei", "Gerberei", "Flößerei", "Glasbläserei"]),
        "pop": g.fmt(g.n(2100, 38000, 10)),
        "employer": g.w.draw(DE_LAST) + g.c([" & Söhne", " Werke", " GmbH"]),
        "product": g.c(
            [
                "Fahrradrahmen",
                "Glasflaschen",
                "Gartengeräte",
                "Blechspielzeug",
                "Kupferkessel",
                "Schulmöbel",
                "Zeltplanen",
                "Wetterfahnen",
            ]
        ),
        "city2": de_town(g),
        "ryear": g.year(1848, 1936),
        "rmin": str(g.n(14, 95)),
        "fest": de_fest(g),
        "month": g.c(DE_MONTHS),
        "hl": g.c(
            [
                "Rennen selbstgebauter Flöße",
                "Umzug geschmückter Heuwagen",
                "Nachtkonzert auf der Brücke",
                "Tauziehen zwischen den Ortsteilen",
                "Fackelzug durch die Altstadt",
            ]
        ),
        "mbld": g.c(
            [
                "alten Zollhaus",
                "ehemaligen Kornspeicher",
                "früheren Bahnhof",
                "alten Feuerwehrhaus",
                "ehemaligen Schulhaus",
            ]
        ),
        "exhibit": g.c(
            [
                "bemalte Uhren",
                "Schiffsmodelle",
                "alte Webstühle",
                "geschnitzte Spazierstöcke",
                "Spitzenkragen",
                "Messinglampen",
            ]
        ),
        "nexh": str(g.n(40, 900)),
    }


def de_town_p1(g: G, f: dict) -> ParaOut:
    t, fo = f["town"], f["founder"]
    s = [
        g.p(
            f"{t} ist eine kleine {f['kind']} in der Region {f['region']}.",
            f"Die {f['kind']} {t} liegt in der Region {f['region']}.",
        ),
        g.p(
            f"Gegründet wurde der Ort im Jahr {f['year']} von {fo.name}. {fo.Er} war {fo.ein} {f['job']} und "
            f"baute {f['bldg']} an der {f['river']}.",
            f"Laut der Stadtchronik gründete {fo.name} die Siedlung im Jahr {f['year']}. {fo.Er} war {fo.ein} "
            f"{f['job']} und errichtete {f['bldg']} am Ufer der {f['river']}.",
        ),
        g.p(
            f"Jahrhundertelang lebten die meisten Familien in {t} von der {f['ind']}.",
            f"Über viele Generationen war die {f['ind']} das wichtigste Handwerk des Ortes.",
        ),
        g.p(
            "Teile der alten Stadtmauer stehen noch heute am Marktplatz.",
            "Die engen Gassen der Altstadt folgen noch immer ihrem mittelalterlichen Verlauf.",
            "Rund um den Marktplatz sind mehrere Fachwerkhäuser aus dieser Zeit erhalten.",
        ),
    ]
    qa = [
        (g.p(f"Wann wurde {t} gegründet?", f"In welchem Jahr wurde {t} gegründet?"), f["year"]),
        (g.p(f"Wer gründete {t}?", f"Von wem wurde {t} gegründet?"), fo.name),
        (g.p(f"Welchen Beruf hatte {fo.name}?", f"Was war {fo.name} von Beruf?"), f["job"]),
        (g.p(f"An welchem Fluss liegt {t}?", f"An welchem Fluss wurde {t} gegründet?"), f["river"]),
        (
            g.p(
                f"Wovon lebten die meisten Familien in {t} früher?",
                f"Welches Handwerk war in {t} lange am wichtigsten?",
            ),
            f["ind"],
        ),
        (g.p(f"In welcher Region liegt {t}?", f"Zu welcher Region gehört {t}?"), f["region"]),
    ]
    un = [
        f"Wer war der erste Bürgermeister von {t}?",
        f"Wie viele Menschen lebten im Jahr {f['year']} in {t}?",
        f"Wie hieß {t} ursprünglich?",
        f"Wie lang ist die {f['river']}?",
    ]
    return s, qa, un


def de_town_p2(g: G, f: dict) -> ParaOut:
    t, emp, c2 = f["town"], f["employer"], f["city2"]
    s = [
        g.p(f"Heute hat {t} rund {f['pop']} Einwohner.", f"Heute leben etwa {f['pop']} Menschen in {t}."),
        g.p(
            f"Größter Arbeitgeber ist die Firma {emp}, die {f['product']} herstellt.",
            f"Die meisten Arbeitsplätze bietet die Firma {emp}; sie stellt {f['product']} her.",
        ),
        g.p(
            f"Seit {f['ryear']} verbindet eine Bahnlinie den Ort mit {c2}, und die Fahrt dauert {f['rmin']} Minuten.",
            f"Im Jahr {f['ryear']} wurde die Bahnstrecke nach {c2} eröffnet; ein Zug braucht heute {f['rmin']} "
            "Minuten dorthin.",
        ),
        g.p(
            "Samstags findet auf dem alten Platz ein Wochenmarkt statt.",
            "Viele junge Leute pendeln zur Arbeit in größere Städte.",
            "Entlang der Hauptstraße reihen sich kleine Werkstätten und Familienläden.",
        ),
    ]
    qa = [
        (g.p(f"Wie viele Einwohner hat {t} heute?", f"Wie viele Menschen leben heute in {t}?"), f["pop"]),
        (g.p(f"Wer ist der größte Arbeitgeber in {t}?", f"Welche Firma bietet in {t} die meisten Arbeitsplätze?"), emp),
        (g.p(f"Was stellt die Firma {emp} her?", f"Welche Produkte stellt {emp} her?"), f["product"]),
        (
            g.p(
                f"Seit wann fährt ein Zug von {t} nach {c2}?",
                f"In welchem Jahr wurde die Bahnstrecke von {t} nach {c2} eröffnet?",
            ),
            f["ryear"],
        ),
        (f"Wie lange dauert die Zugfahrt von {t} nach {c2}?", f"{f['rmin']} Minuten"),
        (
            g.p(f"Mit welcher Stadt ist {t} durch eine Bahnlinie verbunden?", f"Wohin führt die Bahnstrecke von {t}?"),
            c2,
        ),
    ]
    un = [
        f"Wie viele Menschen arbeiten bei {emp}?",
        f"Was kostet eine Fahrkarte von {t} nach {c2}?",
        f"Wann wurde die Firma {emp} gegründet?",
        f"Wie viele Züge fahren täglich zwischen {t} und {c2}?",
    ]
    return s, qa, un


def de_town_p3(g: G, f: dict) -> ParaOut:
    t, fe = f["town"], f["fest"]
    s = [
        g.p(
            f"Jedes Jahr im {f['month']} feiert {t} das {fe}, zu dem Gäste aus der ganzen Region kommen.",
            f"Das bekannteste Ereignis im Ort ist das {fe}, das jedes Jahr im {f['month']} stattfindet.",
        ),
        g.p(f"Höhepunkt ist ein {f['hl']} am letzten Abend.", f"Am beliebtesten ist ein {f['hl']} zum Abschluss."),
        g.p(
            f"Das Heimatmuseum im {f['mbld']} zeigt {f['nexh']} {f['exhibit']}.",
            f"Im {f['mbld']} ist ein kleines Museum untergebracht, das {f['nexh']} {f['exhibit']} ausstellt.",
        ),
        g.p(
            "Es wird von Ehrenamtlichen betrieben.",
            "Schulklassen besuchen es regelmäßig.",
            "Geöffnet ist es vor allem an den Wochenenden.",
        ),
    ]
    qa = [
        (g.p(f"In welchem Monat findet das {fe} statt?", f"Wann im Jahr feiert {t} das {fe}?"), f["month"]),
        (g.p(f"Was ist der Höhepunkt beim {fe}?", f"Was ist beim {fe} am beliebtesten?"), f["hl"]),
        (
            g.p(f"Wo ist das Museum von {t} untergebracht?", f"In welchem Gebäude befindet sich das Museum von {t}?"),
            f["mbld"],
        ),
        (g.p(f"Was zeigt das Museum in {t}?", "Welche Objekte stellt das Museum aus?"), f["exhibit"]),
        (f"Wie viele {f['exhibit']} zeigt das Museum in {t}?", f["nexh"]),
        (f"Welches Fest feiert {t} im {f['month']}?", fe),
    ]
    un = [
        f"Wer hat das {fe} ins Leben gerufen?",
        f"Seit welchem Jahr gibt es das {fe}?",
        f"Wann wurde das Museum von {t} eröffnet?",
        "Wie viel kostet der Eintritt ins Museum?",
    ]
    return s, qa, un


# --------------------------------------------------------------------------------------------------------------
# German: companies
# --------------------------------------------------------------------------------------------------------------

DE_CO_HEADS = [
    "Lindolf",
    "Quendel",
    "Wetzmar",
    "Körbel",
    "Fahlberg",
    "Hölzl",
    "Grummet",
    "Alvenau",
    "Brandolf",
    "Ostwald",
    "Rautner",
    "Tillmar",
    "Ubbel",
    "Wendrich",
    "Sellmann",
    "Pröll",
]
DE_INDUSTRIES = [
    # (name suffix, first product (plural), flagship kind (neuter noun))
    (" Fahrradwerke", "Klappräder", "Reiserad"),
    (" Optik", "Lesebrillen", "Fernglas"),
    (" Funktechnik", "Röhrenradios", "Kofferradio"),
    (" Zeltbau", "Rucksäcke", "Bergzelt"),
    (" Messtechnik", "Taschenbarometer", "Nivelliergerät"),
    (" Spielwaren", "Holzeisenbahnen", "Baukastenset"),
    (" Haushaltswaren", "gusseiserne Pfannen", "Waffeleisen"),
]
DE_MODELS = [
    "Falke",
    "Meridian",
    "Nomade",
    "Eisvogel",
    "Lerche",
    "Komet",
    "Safran",
    "Tundra",
    "Abendstern",
    "Zephir",
    "Pilger",
    "Fischadler",
    "Mistral",
    "Korona",
    "Bussard",
    "Polarstern",
]


def de_company_facts(g: G) -> dict:
    suffix, first, kind = g.c(DE_INDUSTRIES)
    det, hqb = g.c(
        [
            ("einem", "umgebauten Backsteinspeicher"),
            ("einem", "ehemaligen Straßenbahndepot"),
            ("einem", "gläsernen Büroturm"),
            ("einer", "restaurierten Getreidemühle"),
            ("einer", "früheren Tuchfabrik"),
        ]
    )
    f = {
        "co": g.w.draw(DE_CO_HEADS) + suffix,
        "founder": de_person(g),
        "year": g.year(1868, 1986),
        "place": g.c(
            [
                "in einer gemieteten Garage",
                "in einer kleinen Werkstatt",
                "im Hinterzimmer einer Bäckerei",
                "in einem ehemaligen Pferdestall",
                "in einer Dachkammer",
            ]
        ),
        "city": de_town(g),
        "first": first,
        "staff": str(g.n(12, 240)),
        "model": g.w.draw(DE_MODELS) + g.c(["", " 2", " 7", " Classic", " 40"]),
        "kind": kind,
        "sold": g.fmt(g.n(3000, 90000, 500)),
        "city2": de_town(g),
        "ceo": de_person(g),
        "cyear": g.year(2006, 2023),
        "det": det,
        "hqb": hqb,
        "hqcity": de_town(g),
        "slogan": g.c(
            [
                "Gebaut, um repariert zu werden",
                "Für den langen Weg",
                "Kleine Teile, große Ideen",
                "Leise Qualität",
                "Ehrliche Arbeit, jeden Tag",
                "Bereit, wenn Sie es sind",
            ]
        ),
    }
    add_company_years(g, f)
    return f


def de_company_p1(g: G, f: dict) -> ParaOut:
    co, fo = f["co"], f["founder"]
    s = [
        g.p(
            f"Die Firma {co} wurde {f['year']} von {fo.name} gegründet, zunächst {f['place']} in {f['city']}.",
            f"Im Jahr {f['year']} gründete {fo.name} das Unternehmen {co}; gearbeitet wurde anfangs "
            f"{f['place']} in {f['city']}.",
        ),
        g.p(
            f"Das erste Produkt waren {f['first']}, die {fo.name} selbst auf Märkten verkaufte.",
            f"Als erstes Produkt stellte die Firma {f['first']} her, die noch ganz von Hand gefertigt wurden.",
        ),
        g.p(
            f"Zehn Jahre nach der Gründung beschäftigte das Unternehmen bereits {f['staff']} Menschen.",
            f"Ein Jahrzehnt später arbeiteten schon {f['staff']} Leute für die Firma.",
        ),
        g.p(
            "In den ersten Jahren war das Geld knapp, und Aufträge kamen meist von Freunden.",
            "Viele der ersten Werkzeuge waren von Nachbarn geliehen.",
            "Die meisten frühen Kunden wohnten in der näheren Umgebung.",
        ),
    ]
    qa = [
        (g.p(f"Wann wurde {co} gegründet?", f"In welchem Jahr wurde die Firma {co} gegründet?"), f["year"]),
        (g.p(f"Wer gründete {co}?", f"Von wem wurde {co} gegründet?"), fo.name),
        (g.p(f"In welcher Stadt wurde {co} gegründet?", f"Wo begann {fo.name} mit der Firma {co}?"), f["city"]),
        (g.p(f"Was war das erste Produkt von {co}?", f"Was stellte {co} als Erstes her?"), f["first"]),
        (f"Wie viele Menschen arbeiteten zehn Jahre nach der Gründung für {co}?", f["staff"]),
    ]
    un = [
        f"Wie viel Startkapital brauchte {co}?",
        f"Wer war der erste Kunde von {co}?",
        f"Was machte {fo.name} vor der Gründung von {co}?",
        f"Wie alt war {fo.name} bei der Gründung von {co}?",
    ]
    return s, qa, un


def de_company_p2(g: G, f: dict) -> ParaOut:
    co, m = f["co"], f["model"]
    s = [
        g.p(
            f"Bekannt wurde {co} durch das Modell {m}, ein {f['kind']}, das {f['myear']} auf den Markt kam.",
            f"Das bekannteste Produkt von {co} ist das {f['kind']} {m}, das seit {f['myear']} verkauft wird.",
        ),
        g.p(
            f"In den ersten fünf Jahren wurden mehr als {f['sold']} Stück verkauft.",
            f"Innerhalb von fünf Jahren stieg der Absatz auf über {f['sold']} Stück.",
        ),
        g.p(
            f"Um die Nachfrage zu decken, eröffnete das Unternehmen {f['fyear']} ein zweites Werk in {f['city2']}.",
            f"Im Jahr {f['fyear']} kam ein zweites Werk in {f['city2']} hinzu.",
        ),
        g.p(
            "Kritiker lobten die robuste Bauweise und die einfache Reparatur.",
            "Viele frühe Exemplare sind bis heute in Gebrauch.",
            "Die schlichte Form wurde von mehreren Konkurrenten kopiert.",
        ),
    ]
    qa = [
        (g.p(f"Durch welches Modell wurde {co} bekannt?", f"Welches Produkt machte {co} berühmt?"), m),
        (
            g.p(f"Wann kam das Modell {m} auf den Markt?", f"Seit welchem Jahr wird das Modell {m} verkauft?"),
            f["myear"],
        ),
        (f"Was für ein Produkt ist das Modell {m}?", f["kind"]),
        (f"Wie viele Exemplare des Modells {m} wurden in den ersten fünf Jahren verkauft?", f["sold"]),
        (g.p(f"Wo eröffnete {co} ein zweites Werk?", f"In welcher Stadt steht das zweite Werk von {co}?"), f["city2"]),
        (f"Wann eröffnete {co} das zweite Werk?", f["fyear"]),
    ]
    un = [
        f"Was kostete das Modell {m} bei der Markteinführung?",
        f"Wer hat das Modell {m} entworfen?",
        f"Wie viele Menschen arbeiten im zweiten Werk von {co}?",
        f"Wann wurde die Produktion des Modells {m} eingestellt?",
    ]
    return s, qa, un


def de_company_p3(g: G, f: dict) -> ParaOut:
    co, ceo = f["co"], f["ceo"]
    s = [
        g.p(
            f"Seit {f['cyear']} wird {co} von {ceo.name} geleitet, {ceo.der} zuvor lange in der Entwicklung "
            "gearbeitet hat.",
            f"{ceo.name} führt das Unternehmen {co} seit {f['cyear']} und hat seitdem vieles modernisiert.",
        ),
        g.p(
            f"Der Hauptsitz befindet sich in {f['det']} {f['hqb']} in {f['hqcity']}.",
            f"Die Zentrale liegt heute in {f['det']} {f['hqb']} in {f['hqcity']}.",
        ),
        g.p(
            f"Auf jeder Verpackung steht der Werbespruch „{f['slogan']}“.",
            f"Kunden kennen die Firma an ihrem Motto „{f['slogan']}“.",
        ),
        g.p(
            "Das Unternehmen bildet in der eigenen Werkstatt jedes Jahr mehrere Lehrlinge aus.",
            "Ein kleiner Laden gleich neben dem Eingang verkauft Ersatzteile und Zubehör.",
            "Besucher können an Werktagen Führungen durch die Werkstatt buchen.",
        ),
    ]
    qa = [
        (g.p(f"Wer leitet {co}?", f"Wer führt das Unternehmen {co}?"), ceo.name),
        (f"Seit wann leitet {ceo.name} die Firma {co}?", f["cyear"]),
        (g.p(f"Wo hat {co} den Hauptsitz?", f"In welcher Stadt liegt die Zentrale von {co}?"), f["hqcity"]),
        (f"In was für einem Gebäude befindet sich der Hauptsitz von {co}?", f["hqb"]),
        (g.p(f"Wie lautet der Werbespruch von {co}?", f"Welches Motto hat {co}?"), f["slogan"]),
    ]
    un = [
        f"Wer leitete {co} vor {ceo.name}?",
        f"Wie hoch war der Umsatz von {co} im letzten Jahr?",
        f"Wie viele Läden betreibt {co}?",
        f"Wie viele Menschen arbeiten in der Zentrale von {co}?",
    ]
    return s, qa, un


# --------------------------------------------------------------------------------------------------------------
# German: festivals
# --------------------------------------------------------------------------------------------------------------


def de_festival_facts(g: G) -> dict:
    founder = de_person(g)
    return {
        "fest": de_fest(g),
        "town": de_town(g),
        "year": g.year(1890, 1994),
        "founder": founder,
        "job": gendered(
            founder,
            *g.c(
                [
                    ("Fischer", "Fischerin"),
                    ("Lehrer", "Lehrerin"),
                    ("Bäcker", "Bäckerin"),
                    ("Schäfer", "Schäferin"),
                    ("Organist", "Organistin"),
                ]
            ),
        ),
        "season": g.c(["Heuernte", "Fangsaison", "Schafschur", "Weinlese", "Obsternte"]),
        "days": g.c(["drei Tage", "vier Tage", "fünf Tage", "sechs Tage", "neun Tage"]),
        "vis": g.fmt(g.n(1500, 60000, 100)),
        "month": g.c(DE_MONTHS),
        "opening": g.c(
            [
                ("einem", "Umzug mit Papierlaternen"),
                ("dem", "Läuten der Hafenglocke"),
                ("einem", "Feuer am Strand"),
                ("einer", "Prozession geschmückter Boote"),
                ("einem", "Trommelmarsch durch die Altstadt"),
            ]
        ),
        "contest": g.c(["Floßrennen", "Tauziehen", "Drachenduell", "Ruderrennen", "Seifenkistenrennen", "Wettangeln"]),
        "trophy": g.c(
            [
                ("die", "Silberkelle"),
                ("das", "Kupferruder"),
                ("den", "Eisenanker"),
                ("den", "Laternenpokal"),
                ("die", "Messingglocke"),
            ]
        ),
        "stage": g.c(
            [
                ("der", "alten Hafenmauer"),
                ("einem", "schwimmenden Ponton"),
                ("dem", "Marktplatz"),
                ("den", "Stufen des Rathauses"),
                ("einer", "Wiese am Fluss"),
            ]
        ),
        "food": g.c(
            [
                "Holunderkrapfen",
                "Räucheraalbrötchen",
                "Honigknoten",
                "Gerstenpuffer",
                "Lauchtaschen",
                "Brombeertörtchen",
            ]
        ),
        "street": g.c(["Kaistraße", "Mühlengasse", "Kapellengasse", "Hafenstraße", "Seilergasse", "Fischergasse"]),
        "symbol": g.c(
            [
                ("einen", "Wacholderzweig"),
                ("ein", "kleines Messingglöckchen"),
                ("ein", "blaues Band"),
                ("einen", "getrockneten Seestern"),
                ("einen", "Strohknoten"),
            ]
        ),
        "cyear": g.year(1995, 2021),
        "charity": g.c(
            [
                "die örtliche Seenotrettung",
                "die Musikschule der Stadt",
                "den Erhalt des Leuchtturms",
                "die Dorfbücherei",
                "einen Segelclub für Jugendliche",
            ]
        ),
    }


def de_festival_p1(g: G, f: dict) -> ParaOut:
    fe, fo = f["fest"], f["founder"]
    s = [
        g.p(
            f"Das {fe} ist ein jährliches Fest in der Stadt {f['town']}.",
            f"Jedes Jahr richtet die Stadt {f['town']} das {fe} aus.",
        ),
        g.p(
            f"Zum ersten Mal fand es {f['year']} statt, als {fo.name}, {fo.ein} {f['job']} aus dem Ort, ein kleines "
            f"Treffen zum Ende der {f['season']} organisierte.",
            f"Ins Leben gerufen hat es {fo.name}, {fo.ein} {f['job']}, die im Jahr {f['year']} das Ende der "
            f"{f['season']} feiern wollte."
            if fo.female
            else f"Ins Leben gerufen hat es {fo.name}, {fo.ein} {f['job']}, der im Jahr {f['year']} das Ende der "
            f"{f['season']} feiern wollte.",
        ),
        g.p(
            f"Heute dauert das Fest {f['days']} und lockt rund {f['vis']} Besucher an.",
            f"Inzwischen geht es über {f['days']}, und etwa {f['vis']} Gäste kommen jedes Jahr.",
        ),
        g.p(
            "Viele Familien aus der Umgebung reisen schon am Vorabend an.",
            "Die Straßen werden dafür mit bunten Girlanden geschmückt.",
        ),
    ]
    qa = [
        (g.p(f"Wo findet das {fe} statt?", f"Welche Stadt richtet das {fe} aus?"), f["town"]),
        (
            g.p(f"Wann fand das {fe} zum ersten Mal statt?", f"In welchem Jahr wurde das erste {fe} gefeiert?"),
            f["year"],
        ),
        (g.p(f"Wer hat das {fe} ins Leben gerufen?", f"Wer organisierte das erste {fe}?"), fo.name),
        (f"Das Ende welcher Arbeit feierte das erste {fe}?", f["season"]),
        (g.p(f"Wie lange dauert das {fe} heute?", f"Über wie viele Tage geht das {fe}?"), f["days"]),
        (g.p(f"Wie viele Besucher kommen zum {fe}?", f"Wie viele Gäste lockt das {fe} an?"), f["vis"]),
    ]
    un = [
        f"Wie viele Menschen kamen zum ersten {fe}?",
        f"Wer leitet das {fe} heute?",
        f"Wie hieß das {fe} ursprünglich?",
        f"Was kostet eine Eintrittskarte für das {fe}?",
    ]
    return s, qa, un


def de_festival_p2(g: G, f: dict) -> ParaOut:
    fe = f["fest"]
    (odet, opening), (tdet, trophy), (sdet, stage) = f["opening"], f["trophy"], f["stage"]
    s = [
        g.p(
            f"Das {fe} beginnt jedes Jahr im {f['month']} mit {odet} {opening}.",
            f"Eröffnet wird das {fe} im {f['month']} mit {odet} {opening}.",
        ),
        g.p(
            f"Wichtigster Wettbewerb ist das {f['contest']}, bei dem die Siegermannschaft {tdet} {trophy} erhält.",
            f"Die meisten Zuschauer kommen zum {f['contest']}; die Gewinner bekommen {tdet} {trophy}.",
        ),
        g.p(
            f"Am letzten Abend spielen Musikgruppen auf {sdet} {stage}.",
            f"Das Abschlusskonzert findet auf {sdet} {stage} statt.",
        ),
        g.p(
            "Chöre und Blaskapellen aus der Gegend treten die ganze Woche über auf.",
            "Händler verkaufen Kunsthandwerk und gebrauchte Bücher.",
            "Kinder schmücken die Straßen mit Girlanden aus Papier.",
        ),
    ]
    qa = [
        (g.p(f"In welchem Monat beginnt das {fe}?", f"Wann im Jahr wird das {fe} eröffnet?"), f["month"]),
        (g.p(f"Womit beginnt das {fe}?", f"Wie wird das {fe} eröffnet?"), opening),
        (
            g.p(
                f"Was ist der wichtigste Wettbewerb beim {fe}?",
                f"Welcher Wettbewerb zieht beim {fe} die meisten Zuschauer an?",
            ),
            f["contest"],
        ),
        (g.p(f"Was erhalten die Gewinner beim {f['contest']}?", f"Welcher Preis wird beim {fe} vergeben?"), trophy),
        (
            g.p(f"Wo findet das Abschlusskonzert des {fe}es statt?", "Wo spielen die Musikgruppen am letzten Abend?"),
            stage,
        ),
    ]
    un = [
        f"Wer hat im letzten Jahr das {f['contest']} gewonnen?",
        "Was kostet eine Karte für das Abschlusskonzert?",
        f"Welche Band spielte beim ersten {fe}?",
        f"Wer hat den Preis beim {f['contest']} gestiftet?",
    ]
    return s, qa, un


def de_festival_p3(g: G, f: dict) -> ParaOut:
    fe = f["fest"]
    ydet, symbol = f["symbol"]
    s = [
        g.p(
            f"Zum {fe} gehören {f['food']}, die an Ständen in der {f['street']} verkauft werden.",
            f"In der {f['street']} bieten Stände die typischen {f['food']} an, die es nur während des Festes gibt.",
        ),
        g.p(
            f"Viele Besucher tragen {ydet} {symbol} am Mantel, weil das Glück bringen soll.",
            f"Nach altem Brauch steckt man sich {ydet} {symbol} an, als Zeichen für ein gutes Jahr.",
        ),
        g.p(
            f"Seit {f['cyear']} geht ein Teil der Einnahmen an {f['charity']}.",
            f"Seit dem Jahr {f['cyear']} unterstützen die Veranstalter mit einem Teil des Gewinns {f['charity']}.",
        ),
        g.p(
            "Wer länger bleibt, findet in den Gasthäusern der Umgebung ein Zimmer.",
            "Am Sonntag endet das Fest mit einem gemeinsamen Frühstück am Hafen.",
        ),
    ]
    qa = [
        (g.p(f"Welches Gebäck gehört zum {fe}?", f"Was wird beim {fe} an den Ständen verkauft?"), f["food"]),
        (
            g.p(f"In welcher Straße werden die {f['food']} verkauft?", f"Wo gibt es beim {fe} die {f['food']}?"),
            f["street"],
        ),
        (g.p("Was tragen die Besucher als Glücksbringer?", f"Welcher Glücksbringer gehört zum {fe}?"), symbol),
        (
            g.p(f"Wen unterstützt das {fe} mit seinen Einnahmen?", f"Wohin geht ein Teil der Einnahmen des {fe}es?"),
            f["charity"],
        ),
        (f"Seit wann spendet das {fe} einen Teil der Einnahmen?", f["cyear"]),
    ]
    un = [
        f"Wer hat die {f['food']} erfunden?",
        f"Was kostet eine Portion {f['food']}?",
        f"Wie viel Geld hat das {fe} insgesamt gespendet?",
        f"Seit wann gilt {ydet} {symbol} als Glücksbringer?",
    ]
    return s, qa, un


# --------------------------------------------------------------------------------------------------------------
# German: inventors
# --------------------------------------------------------------------------------------------------------------

DE_DEVICES = [  # all feminine: "die Gezeitenuhr"
    ("Gezeitenuhr", "die Höhe der Flut"),
    ("Stockwaage", "das Gewicht eines Bienenstocks"),
    ("Regenwalze", "die tägliche Regenmenge"),
    ("Frostsonde", "die Temperatur im Boden"),
    ("Windharfe", "die Stärke des Windes"),
    ("Saftuhr", "den Saftfluss in Bäumen"),
]


def de_inventor_facts(g: G) -> dict:
    who, partner = de_person(g), de_person(g)
    parent = g.c(["Vater", "Mutter"])
    pjob = g.c(
        [
            ("Uhrmacher", "Uhrmacherin"),
            ("Tischler", "Tischlerin"),
            ("Weber", "Weberin"),
            ("Buchbinder", "Buchbinderin"),
            ("Glaser", "Glaserin"),
        ]
    )
    dev, what = g.c(DE_DEVICES)
    b = g.n(1790, 1905)
    iyear = g.n(b + 24, b + 40)
    return {
        "who": who,
        "byear": str(b),
        "village": de_town(g),
        "parent": parent,
        "pjob": pjob[1] if parent == "Mutter" else pjob[0],
        "age": str(g.n(15, 19)),
        "subject": g.c(["Mechanik", "Chemie", "Physik", "Maschinenbau", "Mathematik"]),
        "college": g.c(["Polytechnikum ", "Technikum ", "Gewerbeinstitut "]) + de_town(g),
        "dev": dev,
        "what": what,
        "iyear": str(iyear),
        "pyear": g.year(iyear + 1, iyear + 4),
        "partner": partner,
        "dyear": g.year(b + 58, b + 88),
        "dplace": de_town(g),
        "prize": f"{who.last}-Preis",
        "interval": g.c(["zwei", "drei", "vier", "fünf"]),
        "ndraw": str(g.n(30, 600)),
    }


def de_inventor_p1(g: G, f: dict) -> ParaOut:
    w = f["who"]
    poss = w.Sein + ("e" if f["parent"] == "Mutter" else "")
    s = [
        g.p(
            f"{w.name} wurde {f['byear']} im Dorf {f['village']} geboren.",
            f"Geboren wurde {w.name} im Jahr {f['byear']} in {f['village']}, einem kleinen Dorf.",
        ),
        g.p(
            f"{poss} {f['parent']} arbeitete als {f['pjob']}, und {w.first} verbrachte als Kind viele Stunden in "
            "der Werkstatt.",
            f"{poss} {f['parent']} war {f['pjob']} und ließ das Kind schon früh bei kleinen Reparaturen helfen.",
        ),
        g.p(
            f"Mit {f['age']} Jahren ging {w.er} an das {f['college']}, um {f['subject']} zu studieren.",
            f"Später studierte {w.er} {f['subject']} am {f['college']}, wo {w.er} mit {f['age']} Jahren anfing.",
        ),
        g.p(
            f"Schon als Kind baute {w.er} kleine Modelle aus Holz und Draht.",
            f"In der Schule fiel {w.er} vor allem durch {w.sein}e Geduld auf.",
        ),
    ]
    qa = [
        (g.p(f"Wann wurde {w.name} geboren?", f"In welchem Jahr wurde {w.name} geboren?"), f["byear"]),
        (g.p(f"Wo wurde {w.name} geboren?", f"In welchem Dorf wurde {w.name} geboren?"), f["village"]),
        (f"Was war {de_gen(w.name)} {f['parent']} von Beruf?", f["pjob"]),
        (g.p(f"Was studierte {w.name}?", f"Welches Fach studierte {w.name}?"), f["subject"]),
        (g.p(f"Wo studierte {w.name}?", f"An welcher Hochschule studierte {w.name}?"), f["college"]),
        (f"Wie alt war {w.name} zu Beginn des Studiums?", f["age"]),
    ]
    un = [
        f"Wie hieß {de_gen(w.name)} {f['parent']}?",
        f"Wie viele Geschwister hatte {w.name}?",
        f"Wann schloss {w.name} das Studium ab?",
        f"Welcher Lehrer prägte {w.name} am meisten?",
    ]
    return s, qa, un


def de_inventor_p2(g: G, f: dict) -> ParaOut:
    w, d, pa = f["who"], f["dev"], f["partner"]
    role = gendered(pa, "Kaufmann", "Kauffrau")
    s = [
        g.p(
            f"Im Jahr {f['iyear']} baute {w.name} die erste {d}, ein Gerät, das {f['what']} misst.",
            f"{de_gen(w.name)} wichtigste Erfindung war die {d}, die {f['iyear']} fertig wurde; sie misst {f['what']}.",
        ),
        g.p(f"{w.Er} erhielt dafür {f['pyear']} ein Patent.", f"Im Jahr {f['pyear']} wurde die Erfindung patentiert."),
        g.p(
            f"{pa.name}, {pa.ein} {role} aus der Stadt, bezahlte die ersten Geräte und wurde {w.sein}"
            f"{'e' if pa.female else ''} {gendered(pa, 'Geschäftspartner', 'Geschäftspartnerin')}.",
            f"Das Geld für die Herstellung kam von {pa.name}, {gendered(pa, 'einem Kaufmann', 'einer Kauffrau')}, "
            f"mit {gendered(pa, 'dem', 'der')} {w.er} eine kleine Firma gründete.",
        ),
        g.p(
            "Die ersten Exemplare waren schwer, spätere Modelle passten auf einen Tisch.",
            "Zu den ersten Kunden gehörten Bauern und Hafenmeister.",
            "Nach wenigen Jahren tauchten Nachbauten in mehreren Ländern auf.",
        ),
    ]
    qa = [
        (g.p(f"Was erfand {w.name}?", f"Was war {de_gen(w.name)} wichtigste Erfindung?"), d),
        (g.p(f"Wann baute {w.name} die erste {d}?", f"In welchem Jahr wurde die erste {d} fertig?"), f["iyear"]),
        (f"Was misst die {d}?", f["what"]),
        (g.p(f"Wann erhielt {w.name} das Patent?", f"In welchem Jahr wurde die {d} patentiert?"), f["pyear"]),
        (
            g.p(f"Wer bezahlte die ersten Geräte von {w.name}?", f"Mit wem arbeitete {w.name} geschäftlich zusammen?"),
            pa.name,
        ),
    ]
    un = [
        f"Wie viele Exemplare der {d} wurden verkauft?",
        f"Was kostete die erste {d}?",
        f"Wer kaufte die erste {d}?",
        f"Wie viel Geld investierte {pa.name}?",
    ]
    return s, qa, un


def de_inventor_p3(g: G, f: dict) -> ParaOut:
    w = f["who"]
    s = [
        g.p(
            f"{w.name} starb {f['dyear']} in {f['dplace']}.",
            f"Die letzten Lebensjahre verbrachte {w.name} in {f['dplace']}, wo {w.er} {f['dyear']} starb.",
        ),
        g.p(
            f"Der {f['prize']} wird alle {f['interval']} Jahre an junge Ingenieurinnen und Ingenieure verliehen.",
            f"Eine Stiftung vergibt den {f['prize']} alle {f['interval']} Jahre an junge Erfinder.",
        ),
        g.p(
            f"In {w.sein}er früheren Werkstatt befindet sich heute ein Museum mit {f['ndraw']} Originalzeichnungen.",
            f"Ein Museum in der ehemaligen Werkstatt bewahrt {f['ndraw']} {w.sein}er Zeichnungen auf.",
        ),
        g.p(
            f"Eine Straße in {f['village']} trägt heute {w.sein}en Namen.",
            f"Viele {w.sein}er Notizbücher gelten als verschollen.",
            "Schulklassen besuchen die Werkstatt regelmäßig.",
        ),
    ]
    qa = [
        (g.p(f"Wann starb {w.name}?", f"In welchem Jahr starb {w.name}?"), f["dyear"]),
        (g.p(f"Wo starb {w.name}?", f"Wo verbrachte {w.name} die letzten Lebensjahre?"), f["dplace"]),
        (g.p(f"Welcher Preis erinnert an {w.name}?", "Welcher Preis wird an junge Erfinder vergeben?"), f["prize"]),
        (f"Wie oft wird der {f['prize']} verliehen?", f"alle {f['interval']} Jahre"),
        (f"Wie viele Zeichnungen von {w.name} bewahrt das Museum auf?", f["ndraw"]),
    ]
    un = [
        f"Mit wem war {w.name} verheiratet?",
        f"Wo ist {w.name} begraben?",
        f"Wer erhielt als Erster den {f['prize']}?",
        "Wann wurde das Museum in der Werkstatt eröffnet?",
    ]
    return s, qa, un


# --------------------------------------------------------------------------------------------------------------
# German: rivers
# --------------------------------------------------------------------------------------------------------------

DE_MOUNTAINS = [
    "Krähenkopf",
    "Bärenkamm",
    "Schwarzgrat",
    "Nebelberg",
    "Hasenstein",
    "Luchsbühl",
    "Falkenstock",
    "Eibenkopf",
    "Dohlenberg",
    "Windkamm",
]


def de_river_facts(g: G) -> dict:
    return {
        "river": g.w.draw(DE_RIVERS),
        "mountain": g.w.draw(DE_MOUNTAINS),
        "alt": g.fmt(g.n(420, 1350, 5)),
        "len": str(g.n(38, 260)),
        "mouth": g.c(["Sellsee", "Ormsee", "Tarnsee", "Meldsee", "Graubodensee"]),
        "trib": g.w.draw(DE_RIVERS),
        "jtown": de_town(g),
        "cargo": g.c(["Holz", "Schiefer", "Getreide", "Salz", "Kohle", "Torf"]),
        "port": de_town(g),
        "lock": g.w.draw(DE_LAST) + "-Schleuse",
        "lyear": g.year(1760, 1890),
        "users": g.c(["Kanuten", "Angler", "Ausflugsschiffe", "Rudervereine"]),
        "fish": g.c(["Bachforellen", "Äschen", "Flussneunaugen", "Aale", "Barben"]),
        "bird": g.c(["Eisvögel", "Graureiher", "Uferschwalben", "Wasseramseln"]),
        "reserve": "Naturschutzgebiet " + g.c(["Erlen", "Otter", "Schilf", "Weiden", "Reiher"]) + "wiesen",
        "ryear": g.year(1960, 2015),
        "rkm": str(g.n(5, 34)),
        "bridge": g.w.draw(DE_LAST) + "brücke",
        "arches": g.c(["drei", "vier", "fünf", "sechs", "sieben", "neun"]),
    }


def de_river_p1(g: G, f: dict) -> ParaOut:
    r = f["river"]
    s = [
        g.p(
            f"Die {r} entspringt am {f['mountain']} in {f['alt']} Meter Höhe.",
            f"Die Quelle der {r} liegt am {f['mountain']}, {f['alt']} Meter über dem Meeresspiegel.",
        ),
        g.p(
            f"Sie ist {f['len']} Kilometer lang und mündet in den {f['mouth']}.",
            f"Auf ihrem {f['len']} Kilometer langen Weg fließt sie bis in den {f['mouth']}.",
        ),
        g.p(
            f"Ihr größter Nebenfluss ist die {f['trib']}, die bei {f['jtown']} einmündet.",
            f"Bei der Stadt {f['jtown']} nimmt sie die {f['trib']} auf, ihren größten Nebenfluss.",
        ),
        g.p(
            "Im Frühjahr überschwemmt der Fluss oft die tief gelegenen Wiesen.",
            "Das obere Tal ist eng und steil, das untere breit und flach.",
            "Im Unterlauf schlängelt sich der Fluss durch Äcker und Weiden.",
        ),
    ]
    qa = [
        (g.p(f"Wo entspringt die {r}?", f"An welchem Berg liegt die Quelle der {r}?"), f["mountain"]),
        (f"In welcher Höhe liegt die Quelle der {r}?", f"{f['alt']} Meter"),
        (g.p(f"Wie lang ist die {r}?", f"Welche Länge hat die {r}?"), f"{f['len']} Kilometer"),
        (g.p(f"Wo mündet die {r}?", f"In welchen See fließt die {r}?"), f["mouth"]),
        (
            g.p(f"Was ist der größte Nebenfluss der {r}?", f"Welcher Fluss mündet bei {f['jtown']} in die {r}?"),
            f["trib"],
        ),
        (f"Bei welcher Stadt mündet die {f['trib']} in die {r}?", f["jtown"]),
    ]
    un = [
        f"Wie tief ist die {r} an der Mündung?",
        f"Woher hat die {r} ihren Namen?",
        f"Wie breit ist die {r} bei {f['jtown']}?",
        f"Wie lang ist die {f['trib']}?",
    ]
    return s, qa, un


def de_river_p2(g: G, f: dict) -> ParaOut:
    r, lk = f["river"], f["lock"]
    s = [
        g.p(
            f"Früher wurde auf der {r} vor allem {f['cargo']} flussabwärts nach {f['port']} gebracht.",
            f"Jahrhundertelang transportierten Lastkähne {f['cargo']} auf der {r} bis zum Hafen von {f['port']}.",
        ),
        g.p(
            f"Erst die {lk}, gebaut im Jahr {f['lyear']}, machte auch den Oberlauf schiffbar.",
            f"Im Jahr {f['lyear']} wurde die {lk} fertiggestellt; seitdem können Boote auch den Oberlauf befahren.",
        ),
        g.p(
            f"Heute sind auf dem Wasser vor allem {f['users']} unterwegs.",
            f"Inzwischen nutzen fast nur noch {f['users']} den Fluss.",
        ),
        g.p(
            "Der alte Treidelpfad ist heute ein beliebter Wanderweg.",
            "Mehrere frühere Lagerhäuser am Ufer sind heute Wohnhäuser.",
            "Einige alte Lastkähne liegen noch am Ufer vertäut.",
        ),
    ]
    qa = [
        (g.p(f"Was wurde früher auf der {r} transportiert?", f"Welche Fracht brachten Kähne auf der {r}?"), f["cargo"]),
        (
            g.p(f"Wohin wurde die Fracht auf der {r} gebracht?", f"Zu welchem Hafen fuhren die Kähne auf der {r}?"),
            f["port"],
        ),
        (g.p(f"Wann wurde die {lk} gebaut?", f"In welchem Jahr wurde die {lk} fertiggestellt?"), f["lyear"]),
        (f"Welche Schleuse machte den Oberlauf der {r} schiffbar?", lk),
        (g.p(f"Wer nutzt die {r} heute vor allem?", f"Wer ist heute auf der {r} unterwegs?"), f["users"]),
    ]
    un = [
        f"Wie viele Lastkähne fuhren jedes Jahr auf der {r}?",
        f"Wer entwarf die {lk}?",
        f"Wie lange dauerte der Bau der {lk}?",
        f"Wann fuhr der letzte Lastkahn auf der {r}?",
    ]
    return s, qa, un


def de_river_p3(g: G, f: dict) -> ParaOut:
    r, b = f["river"], f["bridge"]
    s = [
        g.p(
            f"In der {r} leben {f['fish']}, und an ihren Ufern brüten {f['bird']}.",
            f"Angler schätzen die {r} wegen der {f['fish']}, Vogelkundler kommen wegen der {f['bird']}.",
        ),
        g.p(
            f"Seit {f['ryear']} schützt das {f['reserve']} {f['rkm']} Kilometer des unteren Tals.",
            f"Das {f['reserve']} wurde {f['ryear']} eingerichtet und umfasst {f['rkm']} Kilometer des Tals.",
        ),
        g.p(
            f"Die älteste Brücke über den Fluss ist die {b}, eine Steinbrücke mit {f['arches']} Bögen.",
            f"Über den Fluss führt die alte {b}, die auf {f['arches']} steinernen Bögen ruht.",
        ),
        g.p(
            "Im Sommer baden viele Familien an den flachen Stellen.",
            "Ein Lehrpfad erklärt Besuchern die Tiere und Pflanzen am Ufer.",
        ),
    ]
    qa = [
        (g.p(f"Welche Fische leben in der {r}?", f"Wegen welcher Fische kommen Angler an die {r}?"), f["fish"]),
        (g.p(f"Welche Vögel brüten an der {r}?", f"Welche Vögel findet man an den Ufern der {r}?"), f["bird"]),
        (g.p(f"Welches Schutzgebiet liegt an der {r}?", f"Welches Gebiet schützt das Tal der {r}?"), f["reserve"]),
        (f"Seit wann gibt es das {f['reserve']}?", f["ryear"]),
        (f"Wie viele Kilometer des Tals umfasst das {f['reserve']}?", f"{f['rkm']} Kilometer"),
        (g.p(f"Welche ist die älteste Brücke über die {r}?", f"Wie heißt die alte Steinbrücke über die {r}?"), b),
        (f"Wie viele Bögen hat die {b}?", f["arches"]),
    ]
    un = [
        f"Wann wurde die {b} gebaut?",
        f"Wie viele Fischarten leben in der {r}?",
        f"Wer betreut das {f['reserve']}?",
        f"Wie lang ist die {b}?",
    ]
    return s, qa, un


# --------------------------------------------------------------------------------------------------------------
# German: dishes
# --------------------------------------------------------------------------------------------------------------

DE_DISH_HEADS = [
    "Knöppel",
    "Schmurgel",
    "Plümmel",
    "Wubbel",
    "Brömsel",
    "Quackel",
    "Hüttel",
    "Zöbbel",
    "Pröckel",
    "Tüddel",
    "Gräupel",
    "Schnüsel",
]
DE_DISH_TAILS = ["suppe", "kuchen", "fladen", "auflauf", "pfanne", "brot", "eintopf", "torte"]
DE_INGREDIENTS = [
    "Kartoffeln",
    "Lauch",
    "Räucherspeck",
    "Graupen",
    "Hafermehl",
    "Schmand",
    "Hammelfleisch",
    "Steckrüben",
    "Dörrbirnen",
    "Bergkäse",
    "Zwiebeln",
    "Weißkohl",
    "Walnüsse",
    "Roggenmehl",
]


def de_dish_facts(g: G) -> dict:
    ing = g.sample(DE_INGREDIENTS, 3)
    return {
        "dish": g.w.compose(DE_DISH_HEADS, DE_DISH_TAILS),
        "town": de_town(g),
        "year": g.year(1640, 1910),
        "cook": de_person(g),
        "inn": g.c(
            [
                "Zum Krummen Reiher",
                "Zur Blauen Laterne",
                "Zum Schlafenden Dachs",
                "Zum Goldenen Anker",
                "Zum Lachenden Kessel",
                "Zur Müden Fiedel",
            ]
        ),
        "purpose": g.c(
            [
                "sich aufs Feld mitnehmen ließ",
                "eine ganze Woche hielt",
                "altes Brot verwertete",
                "die Fährleute im Winter wärmte",
            ]
        ),
        "ing": f"{ing[0]}, {ing[1]} und {ing[2]}",
        "rest": str(g.n(10, 40, 5)),
        "temp": str(g.n(160, 220, 10)),
        "bake": str(g.n(45, 120, 5)),
        "secret": g.c(
            [
                "ein Löffel Apfelessig",
                "eine Prise getrocknete Brennnessel",
                "etwas Rauchsalz",
                "ein Schuss dunkles Bier",
                "frisch geriebener Meerrettich",
            ]
        ),
        "side": g.c(["eingelegtem Rotkohl", "grünen Bohnen", "scharfem Apfelmus", "gekochter Roter Bete"]),
        "drink": g.c(["Apfelwein", "Buttermilch", "dunkles Bier", "Holundersaft"]),
        "region": g.c(DE_REGIONS),
        "extra": g.c(["Kümmel", "gehackte Backpflaumen", "frischen Dill", "Blutwurst", "Bärlauch"]),
        "cyear": g.year(1975, 2018),
        "prize": g.c(
            [
                ("einen", "vergoldeten Holzlöffel"),
                ("eine", "Kupferpfanne"),
                ("einen", "silbernen Schneebesen"),
                ("ein", "geschnitztes Brotbrett"),
            ]
        ),
    }


def de_dish_p1(g: G, f: dict) -> ParaOut:
    d, c = f["dish"], f["cook"]
    s = [
        g.p(
            f"{d} ist ein traditionelles Gericht aus {f['town']}.",
            f"Die Heimat des Gerichts {d} ist der Ort {f['town']}, wo es bis heute in vielen Familien gekocht wird.",
        ),
        g.p(
            f"Der Überlieferung nach wurde es {f['year']} zum ersten Mal im Gasthaus „{f['inn']}“ serviert, das "
            f"{c.name} führte.",
            f"Erfunden haben soll es {c.name}, {c.der} im Jahr {f['year']} im Gasthaus „{f['inn']}“ am Herd stand.",
        ),
        g.p(
            f"Gesucht war eine billige, sättigende Mahlzeit, die {f['purpose']}.",
            f"{c.Er} wollte ein sättigendes Essen, das {f['purpose']}.",
        ),
        g.p(
            "Das Rezept wurde lange nur mündlich weitergegeben.",
            "Noch heute steht das Gericht in vielen Häusern sonntags auf dem Tisch.",
        ),
    ]
    qa = [
        (g.p(f"Woher stammt {d}?", f"Aus welchem Ort kommt {d}?"), f["town"]),
        (g.p(f"Wann wurde {d} zum ersten Mal serviert?", f"In welchem Jahr entstand {d}?"), f["year"]),
        (g.p(f"Wer soll {d} erfunden haben?", f"Wer stand am Herd, als {d} entstand?"), c.name),
        (
            g.p(f"In welchem Gasthaus wurde {d} zuerst serviert?", f"Wie hieß das Gasthaus, in dem {d} entstand?"),
            f["inn"],
        ),
    ]
    un = [
        f"Was kostete eine Portion {d} im Gasthaus „{f['inn']}“?",
        f"Wann wurde {d} auch außerhalb von {f['town']} bekannt?",
        f"Wer schrieb das erste Rezept für {d} auf?",
        f"Wann schloss das Gasthaus „{f['inn']}“?",
    ]
    return s, qa, un


def de_dish_p2(g: G, f: dict) -> ParaOut:
    d = f["dish"]
    s = [
        g.p(f"Die wichtigsten Zutaten von {d} sind {f['ing']}.", f"Für {d} braucht man vor allem {f['ing']}."),
        g.p(
            f"Die Masse ruht {f['rest']} Minuten und wird dann bei {f['temp']} Grad etwa {f['bake']} Minuten gebacken.",
            f"Nach {f['rest']} Minuten Ruhezeit kommt alles für {f['bake']} Minuten bei {f['temp']} Grad in den Ofen.",
        ),
        g.p(
            f"Als Geheimnis eines guten Ergebnisses gilt {f['secret']}.",
            f"Das Geheimnis, so sagen die Einheimischen, ist {f['secret']}.",
        ),
        g.p(
            "Aufgewärmt schmeckt das Gericht am zweiten Tag noch besser.",
            "Reste werden oft zum Frühstück angebraten.",
            "Jede Familie hütet ihre eigene Variante des Rezepts.",
        ),
    ]
    qa = [
        (g.p(f"Was sind die wichtigsten Zutaten von {d}?", f"Woraus wird {d} gemacht?"), f["ing"]),
        (g.p(f"Bei wie viel Grad wird {d} gebacken?", f"Wie heiß muss der Ofen für {d} sein?"), f"{f['temp']} Grad"),
        (g.p(f"Wie lange wird {d} gebacken?", f"Wie lange bleibt {d} im Ofen?"), f"{f['bake']} Minuten"),
        (f"Wie lange ruht die Masse für {d} vor dem Backen?", f"{f['rest']} Minuten"),
        (g.p(f"Was ist das Geheimnis von {d}?", f"Was gilt bei {d} als Geheimnis?"), f["secret"]),
    ]
    un = [
        f"Wie viele Kalorien hat eine Portion {d}?",
        f"Für wie viele Personen reicht ein Blech {d}?",
        f"In welcher Form wird {d} gebacken?",
        f"Wie lange hält sich {d} im Keller?",
    ]
    return s, qa, un


def de_dish_p3(g: G, f: dict) -> ParaOut:
    d = f["dish"]
    pdet, prize = f["prize"]
    s = [
        g.p(
            f"Serviert wird {d} meist mit {f['side']}, und dazu trinkt man {f['drink']}.",
            f"Meist kommt {d} mit {f['side']} auf den Tisch; dazu gibt es {f['drink']}.",
        ),
        g.p(
            f"In der Region {f['region']} gibt man noch {f['extra']} dazu.",
            f"Eine Variante aus der Region {f['region']} enthält zusätzlich {f['extra']}.",
        ),
        g.p(
            f"Seit {f['cyear']} findet jedes Jahr ein Kochwettbewerb statt, bei dem es {pdet} {prize} zu gewinnen "
            "gibt.",
            f"Beim jährlichen Kochwettbewerb, den es seit {f['cyear']} gibt, erhält der Sieger {pdet} {prize}.",
        ),
        g.p(
            "Viele Gasthäuser der Gegend haben das Gericht das ganze Jahr auf der Karte.",
            "Im Herbst wird das Gericht auf dem Wochenmarkt frisch verkauft.",
        ),
    ]
    qa = [
        (g.p(f"Womit wird {d} meist serviert?", f"Welche Beilage gibt es zu {d}?"), f["side"]),
        (g.p(f"Was trinkt man zu {d}?", f"Welches Getränk passt zu {d}?"), f["drink"]),
        (f"Aus welcher Region stammt eine Variante von {d}?", f["region"]),
        (
            g.p(f"Was enthält die regionale Variante von {d} zusätzlich?", "Welche Zutat kommt in der Variante dazu?"),
            f["extra"],
        ),
        (
            g.p(f"Seit wann gibt es den Kochwettbewerb für {d}?", "Seit welchem Jahr findet der Kochwettbewerb statt?"),
            f["cyear"],
        ),
        (g.p("Was bekommt der Sieger des Kochwettbewerbs?", f"Was gewinnt man beim Kochwettbewerb für {d}?"), prize),
    ]
    un = [
        "Wer gewann den letzten Kochwettbewerb?",
        "Wie viele Köche nehmen jedes Jahr am Kochwettbewerb teil?",
        "Wer sitzt in der Jury des Kochwettbewerbs?",
        "In welchem Monat findet der Kochwettbewerb statt?",
    ]
    return s, qa, un


DE_TYPES = [
    ArticleType("town", de_town_facts, lambda f: f["town"], [de_town_p1, de_town_p2, de_town_p3]),
    ArticleType("company", de_company_facts, lambda f: f["co"], [de_company_p1, de_company_p2, de_company_p3]),
    ArticleType("festival", de_festival_facts, lambda f: f["fest"], [de_festival_p1, de_festival_p2, de_festival_p3]),
    ArticleType(
        "inventor", de_inventor_facts, lambda f: f["who"].name, [de_inventor_p1, de_inventor_p2, de_inventor_p3]
    ),
    ArticleType("river", de_river_facts, lambda f: f"{f['river']} (Fluss)", [de_river_p1, de_river_p2, de_river_p3]),
    ArticleType("dish", de_dish_facts, lambda f: f["dish"], [de_dish_p1, de_dish_p2, de_dish_p3]),
]


# ==============================================================================================================
# Assembly: articles -> SQuAD v2.0 JSON
# ==============================================================================================================

MAX_ANSWER_WORDS = 5
PARA_TRIES = 40
ARTICLE_TRIES = 20
# Per paragraph: how many answerable and unanswerable questions to ask (at most 4 in all, at least 2).
N_ANSWERABLE = (2, 2, 3, 3, 3)
UNANSWERABLE_SHARE = 0.27  # steered per paragraph, with some noise, towards this share
MAX_QUESTIONS = 4


def find_once(context: str, answer: str) -> int:
    """Start of `answer` in `context` when it occurs exactly once and on word boundaries, else -1."""
    start = context.find(answer)
    if start < 0 or context.find(answer, start + 1) >= 0:
        return -1
    end = start + len(answer)
    if (start > 0 and context[start - 1].isalnum()) or (end < len(context) and context[end].isalnum()):
        return -1
    return start


def build_paragraph(g: G, template: Callable[[G, dict], ParaOut], facts: dict, tally: list[int]) -> dict | None:
    """One paragraph with its questions, or None when no phrasing fits the word limits.

    `tally` is [answerable, unanswerable] so far; it is updated with this paragraph's questions.
    """
    for _ in range(PARA_TRIES):
        sentences, qa, unanswerable = template(g, facts)
        context = fix_articles(" ".join(sentences), g.lang)
        qa = [(fix_articles(q, g.lang), a) for q, a in qa]
        unanswerable = [fix_articles(q, g.lang) for q in unanswerable]
        if MIN_WORDS <= word_count(context) <= MAX_WORDS:
            break
    else:
        return None
    answerable, seen = [], set()
    for question, answer in qa:
        start = find_once(context, answer)
        if start >= 0 and answer not in seen and 1 <= word_count(answer) <= MAX_ANSWER_WORDS:
            seen.add(answer)
            answerable.append({"question": question, "answers": [{"text": answer, "answer_start": start}]})
    if len(answerable) < 2:
        return None
    n_ans = min(g.c(N_ANSWERABLE), len(answerable))
    # How many unanswerable questions bring the running share to UNANSWERABLE_SHARE, give or take one.
    t, (n_a, n_u) = UNANSWERABLE_SHARE, tally
    ideal = (t * (n_a + n_u + n_ans) - n_u) / (1 - t)
    n_un = max(0, min(round(ideal + g.c((-0.7, 0.0, 0.0, 0.7))), 2, len(unanswerable), MAX_QUESTIONS - n_ans))
    tally[0] += n_ans
    tally[1] += n_un
    qas = g.sample(answerable, n_ans) + [{"question": q, "answers": []} for q in g.sample(unanswerable, n_un)]
    g.r.shuffle(qas)
    return {"context": context, "qas": qas}


def build_article(rng: random.Random, world: World, lang: str, kind: ArticleType, tally: list[int]) -> dict:
    for _ in range(ARTICLE_TRIES):
        trial = list(tally)
        g = G(rng, world, lang)
        facts = kind.facts(g)
        templates = list(kind.paragraphs)
        if len(templates) > 2 and rng.random() < TWO_PARAGRAPH_SHARE[lang]:
            # Two-paragraph article: keep the opening paragraph and one of the others.
            templates = [templates[0], rng.choice(templates[1:])]
        paragraphs = [build_paragraph(g, t, facts, trial) for t in templates]
        if all(p is not None for p in paragraphs):
            tally[:] = trial
            return {"title": kind.title(facts), "paragraphs": paragraphs}
    raise RuntimeError(f"could not build a {kind.name} article ({lang})")


def build_dataset(lang: str) -> dict:
    types = EN_TYPES if lang == "en" else DE_TYPES
    rng = random.Random(f"{SEED}-{lang}")
    world = World(rng)
    n = N_ARTICLES[lang]
    kinds = [types[i % len(types)] for i in range(n)]
    rng.shuffle(kinds)
    tally = [0, 0]
    articles = [build_article(rng, world, lang, kind, tally) for kind in kinds]
    counter = 0
    for article in articles:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                counter += 1
                qa["id"] = f"demo-{lang}-{counter:04d}"
                qa["is_impossible"] = not qa["answers"]
    # Key order as in the official files: id, question, answers, is_impossible.
    for article in articles:
        for para in article["paragraphs"]:
            para["qas"] = [{k: qa[k] for k in ("id", "question", "answers", "is_impossible")} for qa in para["qas"]]
    validate(articles, lang)
    return {"version": "v2.0", "data": articles}


def validate(articles: list[dict], lang: str) -> None:
    titles = [a["title"] for a in articles]
    if len(set(titles)) != len(titles):
        raise RuntimeError(f"{lang}: duplicate titles")
    for article in articles:
        for para in article["paragraphs"]:
            ctx = para["context"]
            if not MIN_WORDS <= word_count(ctx) <= MAX_WORDS:
                raise RuntimeError(f"{lang}: paragraph of {word_count(ctx)} words in {article['title']!r}")
            if not 2 <= len(para["qas"]) <= MAX_QUESTIONS:
                raise RuntimeError(f"{lang}: {len(para['qas'])} questions in a paragraph of {article['title']!r}")
            for qa in para["qas"]:
                for ans in qa["answers"]:
                    start, text = ans["answer_start"], ans["text"]
                    if ctx[start : start + len(text)] != text:
                        raise RuntimeError(f"{lang}: bad answer_start for {qa['id']}")


def stats(doc: dict) -> tuple[int, int, int]:
    qas = [qa for a in doc["data"] for p in a["paragraphs"] for qa in p["qas"]]
    return len(doc["data"]), len(qas), sum(qa["is_impossible"] for qa in qas)


def render(doc: dict) -> str:
    return json.dumps(doc, ensure_ascii=False, indent=1) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out-dir", type=Path, default=OUT_DIR, help=f"where to write (default: {OUT_DIR})")
    parser.add_argument("--check", action="store_true", help="compare with the files in --out-dir, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for lang in ("en", "de"):
        doc = build_dataset(lang)
        text = render(doc)
        path = args.out_dir / f"demo_qa_{lang}.json"
        n_art, n_q, n_un = stats(doc)
        print(f"{lang}: {n_art} articles, {n_q} questions, {n_un} unanswerable ({n_un / n_q:.0%}) -> {path}")
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
    if stale:
        print("out of date: " + ", ".join(str(p) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
