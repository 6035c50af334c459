"""An OIDC token's claims → who it is (user name, groups, role): a pure mapping."""

from __future__ import annotations

from typing import Any

import pytest

from toolship.api.oidc import principal_from_claims
from toolship.config import OidcSettings
from toolship.errors import Unauthorized
from toolship.identity import Principal, Role

ISSUER = "https://login.example.org"


def settings(**given: Any) -> OidcSettings:
    return OidcSettings(issuer=ISSUER, audience="toolship", **given)


def test_the_user_claim_names_the_user_and_sub_stands_in_when_it_is_missing() -> None:
    s = settings()
    named = principal_from_claims({"sub": "u-1", "preferred_username": "alice"}, s)
    assert named == Principal("alice", Role.USER, (), via="oidc")
    assert principal_from_claims({"sub": "u-1@egi.eu"}, s).name == "u-1@egi.eu"
    assert principal_from_claims({"sub": "u-1", "email": "a@x.org"}, settings(user_claim="email"))
    assert principal_from_claims({"sub": "u-1", "preferred_username": ""}, s).name == "u-1"


def test_groups_map_to_roles_and_the_highest_wins() -> None:
    s = settings(
        admin_groups=["ops"],
        maintainer_groups=["curators"],
        user_groups=["scientists"],
        viewer_groups=["guests"],
    )

    def role(*groups: str) -> Role:
        return principal_from_claims({"sub": "x", "groups": list(groups)}, s).role

    assert role("guests") == Role.VIEWER
    assert role("guests", "scientists") == Role.USER
    assert role("scientists", "curators", "guests") == Role.MAINTAINER
    assert role("guests", "ops") == Role.ADMIN
    assert role("strangers") == Role.USER  # default_role


def test_the_group_that_gave_the_role_comes_first_as_the_tasks_group() -> None:
    s = settings(user_groups=["scientists"])
    found = principal_from_claims({"sub": "x", "groups": ["newsletter", "scientists", "x"]}, s)
    assert found.groups == ("scientists", "newsletter", "x")
    assert found.group == "scientists"
    plain = principal_from_claims({"sub": "x", "groups": ["b", "a"]}, s)
    assert plain.groups == ("b", "a")


def test_group_claims_may_be_nested_namespaced_or_a_single_string() -> None:
    keycloak = {"sub": "x", "realm_access": {"roles": ["curators"]}}
    nested = settings(groups_claim="realm_access.roles", maintainer_groups=["curators"])
    assert principal_from_claims(keycloak, nested).role == Role.MAINTAINER
    auth0 = {"sub": "x", "https://example.org/groups": ["ops"]}
    namespaced = settings(groups_claim="https://example.org/groups", admin_groups=["ops"])
    assert principal_from_claims(auth0, namespaced).role == Role.ADMIN
    one = principal_from_claims({"sub": "x", "groups": "ops"}, settings(admin_groups=["ops"]))
    assert one.groups == ("ops",) and one.is_admin
    odd = principal_from_claims({"sub": "x", "groups": ["ok", 7, None, {"a": 1}]}, settings())
    assert odd.groups == ("ok",)
    assert principal_from_claims({"sub": "x", "groups": 7}, settings()).groups == ()


def test_no_role_is_refused_naming_the_groups_and_the_settings() -> None:
    s = settings(default_role="none", user_groups=["scientists"])
    with pytest.raises(Unauthorized) as refused:
        principal_from_claims({"sub": "x", "preferred_username": "eve", "groups": ["g"]}, s)
    message = str(refused.value)
    assert "'eve' has no role on this server" in message
    assert "groups: g" in message
    assert "access.oidc.user_groups" in message and "default_role is 'none'" in message
    assert principal_from_claims({"sub": "x", "groups": ["scientists"]}, s).role == Role.USER


@pytest.mark.parametrize("name", ["../bob", "a/b", ".hidden", "x" * 200, "a b", "é"])
def test_a_name_unfit_for_paths_is_refused_naming_the_claim(name: str) -> None:
    with pytest.raises(Unauthorized) as refused:
        principal_from_claims({"sub": "x", "preferred_username": name}, settings())
    assert "preferred_username" in str(refused.value)
    assert "access.oidc.user_claim" in str(refused.value)


@pytest.mark.parametrize("name", ["admin", "local"])
def test_the_names_of_the_server_token_and_the_operator_are_not_given_away(name: str) -> None:
    with pytest.raises(Unauthorized, match="reserved"):
        principal_from_claims({"sub": "x", "preferred_username": name}, settings())


def test_a_token_without_sub_or_user_claim_is_refused() -> None:
    with pytest.raises(Unauthorized, match="neither 'preferred_username' nor 'sub'"):
        principal_from_claims({"email": "x@y"}, settings())
