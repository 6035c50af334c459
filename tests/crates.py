"""Checks a Process Run Crate with roc-validator, offline.

roc-validator fetches RO-Crate's JSON-LD context from w3id.org (to parse the crate, and
in one check).  No network here: its HTTP cache is seeded with the context that
ro-crate-py ships (RO-Crate 1.3's, a superset of 1.1's terms, mapped to the same IRIs),
and the validator runs with ``offline=True`` so nothing else is fetched.
"""

from __future__ import annotations

import importlib.resources
import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import urllib3
from requests.structures import CaseInsensitiveDict
from rocrate_validator import services
from rocrate_validator.models import Severity, ValidationSettings
from rocrate_validator.utils.http import HttpRequester

import requests

CONTEXTS = ("https://w3id.org/ro/crate/1.1/context",)


@dataclass(frozen=True)
class Issue:
    severity: str
    message: str


def _seed(url: str) -> None:
    body = importlib.resources.files("rocrate").joinpath("data/ro-crate.jsonld").read_bytes()
    headers = {"Content-Type": "application/ld+json"}
    response = requests.Response()
    response.status_code, response.reason, response.url = 200, "OK", url
    response._content = body
    response.encoding = "utf-8"
    response.headers = CaseInsensitiveDict(headers)
    response.raw = urllib3.HTTPResponse(
        body=io.BytesIO(body), headers=headers, status=200, preload_content=False,
        request_url=url,
    )  # fmt: skip
    response.request = requests.Request("GET", url).prepare()
    HttpRequester().session.cache.save_response(response)


def validate(crate: Path, cache: Path) -> list[Issue]:
    """Every issue of the Process Run Crate profile (and RO-Crate 1.1's), down to SHOULD."""
    settings = ValidationSettings(
        rocrate_uri=str(crate),
        profile_identifier="process-run-crate",
        requirement_severity=Severity.RECOMMENDED,
        offline=True,
        cache_path=cache,
    )
    for url in CONTEXTS:
        _seed(url)
    with warnings.catch_warnings():  # rdflib's, inside the validator
        warnings.simplefilter("ignore", DeprecationWarning)
        result = services.validate(settings)
    return [Issue(i.severity.name, i.message) for i in result.get_issues()]


def required(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "REQUIRED"]
