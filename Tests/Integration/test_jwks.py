"""Production-mode authentication (PROTOCOL.md section 1): RS256/ES256 verified against a JWKS file, HS256 with the
shared secret, issuer and audience checks, and no algorithm confusion."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from websockets.exceptions import InvalidStatus

from hubclient import PROD_AUDIENCE, PROD_ISSUER, claims, jwt_es256, jwt_hs256, jwt_rs256, refused_status


def prod_claims(sub="u-jwks", tenant="t1", role="proctor", **extra):
    return claims(sub, tenant, role, **{"iss": PROD_ISSUER, "aud": PROD_AUDIENCE, **extra})


def test_rs256_token_from_the_jwks_is_accepted(prod_hub):
    token = jwt_rs256(prod_claims(role="proctor", exams=["e1"]), prod_hub.rsa_key, prod_hub.rsa_kid)
    with prod_hub.connect() as c:
        data = c.hello(token)
        assert data["user"] == {"id": "u-jwks", "tenant": "t1", "role": "proctor"}
        c.ok("subscribe", ch="exam:e1:proctor")
        c.error("subscribe", "forbidden", ch="exam:e2:proctor")  # the exams claim of an RS256 token counts
    with prod_hub.connect(bearer=token) as c:
        c.ping()


def test_es256_token_from_the_jwks_is_accepted(prod_hub):
    token = jwt_es256(prod_claims(role="candidate", sub="c-es"), prod_hub.ec_key, prod_hub.ec_kid)
    with prod_hub.connect() as c:
        assert c.hello(token)["user"] == {"id": "c-es", "tenant": "t1", "role": "candidate"}


def test_hs256_with_the_shared_secret_is_still_accepted(prod_hub):
    with prod_hub.connect() as c:
        c.hello(prod_hub.token("admin", "a-hs"))
        c.ping()


def test_audience_may_be_a_list(prod_hub):
    token = jwt_rs256(prod_claims(aud=["other", PROD_AUDIENCE]), prod_hub.rsa_key, prod_hub.rsa_kid)
    with prod_hub.connect() as c:
        c.hello(token)


def _public_pems(key) -> dict[str, bytes]:
    pub = key.public_key()
    return {
        "SPKI PEM": pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        "PKCS1 PEM": pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1),
        "DER": pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
    }


@pytest.mark.parametrize("form", ["SPKI PEM", "PKCS1 PEM", "DER", "JWKS file"])
@pytest.mark.parametrize("with_kid", [False, True], ids=["no kid", "kid of the RSA key"])
def test_key_confusion_hs256_signed_with_the_public_key_is_refused(prod_hub, form, with_kid):
    """An attacker who knows the RSA public key signs HS256 with it as the HMAC secret."""
    secret = prod_hub.jwks_path.read_bytes() if form == "JWKS file" else _public_pems(prod_hub.rsa_key)[form]
    header = {"alg": "HS256", "typ": "JWT", **({"kid": prod_hub.rsa_kid} if with_kid else {})}
    token = jwt_hs256(prod_claims(role="admin"), secret, header=header)
    with prod_hub.connect() as c:
        c.error("hello", "unauthorized", token=token)
        c.error("ping", "unauthorized")
    with pytest.raises(InvalidStatus) as excinfo:
        prod_hub.ws(headers={"Authorization": f"Bearer {token}"})
    assert refused_status(excinfo)[0] == 401


def test_rs256_header_on_an_hmac_signature_is_refused(prod_hub):
    token = jwt_hs256(prod_claims(), prod_hub.secret, header={"alg": "RS256", "typ": "JWT", "kid": prod_hub.rsa_kid})
    with prod_hub.connect() as c:
        c.error("hello", "unauthorized", token=token)


@pytest.mark.parametrize("case", ["another RSA key, same kid", "another RSA key, unknown kid",
                                  "another RSA key, no kid", "expired", "wrong issuer",
                                  "no issuer", "wrong audience", "no audience", "ES256 kid on an RS256 token"])
def test_refused_jwks_tokens(prod_hub, case):
    good = prod_claims()
    key, kid = prod_hub.rsa_key, prod_hub.rsa_kid
    if case == "another RSA key, same kid":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif case == "another RSA key, unknown kid":
        key, kid = rsa.generate_private_key(public_exponent=65537, key_size=2048), "rsa-404"
    elif case == "another RSA key, no kid":
        key, kid = rsa.generate_private_key(public_exponent=65537, key_size=2048), None
    elif case == "expired":
        good = prod_claims(exp=good["iat"] - 60)
    elif case == "wrong issuer":
        good["iss"] = "https://evil.example"
    elif case == "no issuer":
        del good["iss"]
    elif case == "wrong audience":
        good["aud"] = "someone-else"
    elif case == "no audience":
        del good["aud"]
    elif case == "ES256 kid on an RS256 token":
        kid = prod_hub.ec_kid
    with prod_hub.connect() as c:
        c.error("hello", "unauthorized", token=jwt_rs256(good, key, kid))
        c.hello(jwt_rs256(prod_claims(), prod_hub.rsa_key, prod_hub.rsa_kid))  # then a good one works


def test_hs256_without_issuer_is_refused_when_an_issuer_is_configured(prod_hub):
    token = jwt_hs256(claims("u1", "t1", "proctor", aud=PROD_AUDIENCE), prod_hub.secret)
    with prod_hub.connect() as c:
        c.error("hello", "unauthorized", token=token)


def test_production_mode_prints_no_dev_tokens(prod_hub):
    printed = [line for line in prod_hub.stdout_lines if line.strip()]
    assert len(printed) == 1 and printed[0].startswith("examhub listening on 127.0.0.1:"), printed
    assert not any("eyJ" in line for line in printed)


def test_jwks_document_is_what_the_hub_was_given(prod_hub):
    doc = json.loads(prod_hub.jwks_path.read_text())
    assert {k["kid"] for k in doc["keys"]} == {"rsa-1", "ec-1"}
    assert all("d" not in k for k in doc["keys"])  # public keys only


def test_trusted_key_under_an_unknown_kid_is_refused(prod_hub):
    """A token must name a kid of the JWKS (or none): an unknown kid is never tried against a default key."""
    with prod_hub.connect() as c:
        c.error("hello", "unauthorized", token=jwt_rs256(prod_claims(), prod_hub.rsa_key, "rsa-404"))
        c.hello(jwt_rs256(prod_claims(), prod_hub.rsa_key, prod_hub.rsa_kid))
