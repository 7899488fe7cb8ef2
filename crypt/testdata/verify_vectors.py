#!/usr/bin/env python3
"""Independent check of the cryptfs format v1 test vectors.

Written from docs/format.md alone (not from the Go code), with the Python
'cryptography' package and hashlib. Run from the repository root:

    python3 crypt/testdata/verify_vectors.py

Exits 0 and prints "ok" when every vector matches the specification.
"""
import base64
import hashlib
import json
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def rotl(v, c):
    return ((v << c) & 0xFFFFFFFF) | (v >> (32 - c))


def hchacha20(key, nonce16):
    """HChaCha20 (draft-irtf-cfrg-xchacha, section 2.2)."""
    s = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    s += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))

    def qr(a, b, c, d):
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & 0xFFFFFFFF; s[d] = rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & 0xFFFFFFFF; s[b] = rotl(s[b] ^ s[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def xseal(key, nonce, plaintext, ad):
    sub = hchacha20(key, nonce[:16])
    return ChaCha20Poly1305(sub).encrypt(b"\0\0\0\0" + nonce[16:], plaintext, ad or None)


def xopen(key, nonce, ct, ad):
    sub = hchacha20(key, nonce[:16])
    return ChaCha20Poly1305(sub).decrypt(b"\0\0\0\0" + nonce[16:], ct, ad or None)


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def b64url_decode(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def subkey(master, purpose):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"cryptfs v1 " + purpose.encode()).derive(master)


def pad32(b):
    return b + b"\0" * (-len(b) % 32)


def check(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)


def seal_name(nonce_key, seal_key, iv, name):
    padded = pad32(name)
    nonce = hashlib.blake2b(iv + padded, digest_size=24, key=nonce_key).digest()
    return nonce, b64url(nonce + xseal(seal_key, nonce, padded, iv))


def verify_crypt(path):
    v = json.load(open(path))
    master = bytes.fromhex(v["master_key"])
    keys = {}
    for sk in v["subkeys"]:
        keys[sk["purpose"]] = subkey(master, sk["purpose"])
        check(keys[sk["purpose"]].hex() == sk["key"], "subkey " + sk["purpose"])
    for h in v["headers"]:
        raw = bytes.fromhex(h["header"])
        version = struct.unpack(">H", raw[:2])[0]
        if "error" in h:
            check(version != 1, h["name"])
        else:
            check(version == 1 and raw[2:].hex() == h["file_id"] and len(raw) == 18, h["name"])
    for b in v["blocks"]:
        fid = bytes.fromhex(b["file_id"])
        ad = fid + struct.pack(">Q", b["block_number"])
        check(ad.hex() == b["additional_data"], b["name"] + " ad")
        if "plaintext_rule" in b:
            plain = bytes(i % 251 for i in range(4096))
        else:
            plain = bytes.fromhex(b.get("plaintext", ""))
        if "nonce" in b:
            nonce = bytes.fromhex(b["nonce"])
            stored = nonce + xseal(keys["content"], nonce, plain, ad)
            if "stored_sha256" in b:
                check(hashlib.sha256(stored).hexdigest() == b["stored_sha256"] and len(stored) == b["stored_len"]
                      and stored.hex().startswith(b["stored_prefix"]), b["name"])
            else:
                check(stored.hex() == b["stored"], b["name"])
            continue
        stored = bytes.fromhex(b["stored"])
        if stored == bytes(len(stored)):  # hole rule
            check(plain == bytes(len(stored) - 40), b["name"])
            continue
        try:
            xopen(keys["content"], stored[:24], stored[24:], ad)
            check(False, b["name"] + " should fail")
        except InvalidTag:
            check(b.get("error") == "authentication failed", b["name"])
    for n in v["names"]:
        iv = bytes.fromhex(n["dir_iv"])
        if "error" in n:
            raw = b64url_decode(n["encoded"])
            try:
                xopen(keys["name-seal"], raw[:24], raw[24:], iv)
                check(False, n["name"] + " should fail")
            except InvalidTag:
                pass
            continue
        nonce, enc = seal_name(keys["name-nonce"], keys["name-seal"], iv, n["plaintext"].encode())
        check(nonce.hex() == n["synthetic_nonce"] and enc == n["encoded"], n["name"])
        check(len(pad32(n["plaintext"].encode())) == n["padded_len"], n["name"] + " padding")
        if len(enc) > 255:
            lower = "longname." + b64url(hashlib.sha256(enc.encode()).digest())
            check(lower == n["lower"] and n["sidecar"] == ".cryptfs." + lower, n["name"] + " long name")
        else:
            check(n["lower"] == enc and "sidecar" not in n, n["name"] + " lower")
    for x in v["xattrs"]:
        nonce, enc = seal_name(keys["xattr-name-nonce"], keys["xattr-name-seal"], bytes(16), x["plaintext"].encode())
        check(nonce.hex() == x["synthetic_nonce"] and "user." + enc == x["lower"], x["name"] + " name")
        vn = bytes.fromhex(x["value_nonce"])
        sealed = vn + xseal(keys["xattr-value"], vn, bytes.fromhex(x["value"]), x["lower"].encode())
        check(sealed.hex() == x["sealed"], x["name"] + " value")
    for s in v["symlinks"]:
        nonce = bytes.fromhex(s["nonce"])
        stored = b64url(nonce + xseal(keys["symlink"], nonce, pad32(s["target"].encode()), b""))
        check(stored == s["stored"], s["name"])


CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def gf_mul(a, b):
    p = 0
    for _ in range(5):
        if b & 1:
            p ^= a
        b >>= 1
        a <<= 1
        if a & 0x20:
            a ^= 0x25
    return p


def recovery_key(master):
    payload = master + hashlib.sha256(b"cryptfs recovery key v1" + master).digest()[:3]
    n = int.from_bytes(payload, "big")
    syms = [(n >> (5 * (55 - i))) & 31 for i in range(56)]
    groups = []
    for g in range(8):
        d = syms[7 * g:7 * g + 7]
        c, w = g, 1
        for s in d:
            w = gf_mul(w, 2)
            c ^= gf_mul(w, s)
        groups.append("".join(CROCKFORD[s] for s in d + [c]))
    return "-".join(groups)


def verify_config(path, conf_dir):
    v = json.load(open(path))
    c = v["config"]
    conf_bytes = open(conf_dir + "/" + c["file"], "rb").read()
    conf = json.loads(conf_bytes)
    k = c["kdf"]
    salt = bytes.fromhex(k["salt"])
    check(base64.b64decode(conf["kdf"]["salt"]) == salt, "salt in file")
    ad = b"cryptfs.conf" + struct.pack(">HH", c["version"], len(c["features"]))
    for f in c["features"]:
        ad += struct.pack(">H", len(f)) + f.encode()
    ad += struct.pack(">H", len(k["algorithm"])) + k["algorithm"].encode()
    ad += struct.pack(">IIB", k["time"], k["memory_kib"], k["threads"])
    ad += struct.pack(">H", len(salt)) + salt
    check(ad.hex() == c["additional_data"], "config additional data")
    kek = Argon2id(salt=salt, length=32, iterations=k["time"], lanes=k["threads"],
                   memory_cost=k["memory_kib"]).derive(c["password"].encode())
    check(kek.hex() == c["kek"], "argon2id kek")
    wrapped = base64.b64decode(conf["wrapped_key"])
    check(wrapped.hex() == c["wrapped_key"] and wrapped[:24].hex() == c["wrap_nonce"], "wrapped key in file")
    master = xopen(kek, wrapped[:24], wrapped[24:], ad)
    check(master.hex() == c["master_key"], "unwrapped master key")
    kc = hashlib.blake2b(ad, digest_size=32, key=subkey(master, "key-check")).digest()
    check(kc.hex() == c["key_check"] and base64.b64decode(conf["key_check"]) == kc, "key check")
    canonical = json.dumps(conf, indent=2).encode() + b"\n"
    check(canonical == conf_bytes, "canonical serialisation")
    for r in v["recovery_keys"]:
        if r["name"] == "good_recovery_key":
            check(recovery_key(bytes.fromhex(r["master_key"])) == r["input"], r["name"])


if __name__ == "__main__":
    verify_crypt("crypt/testdata/vectors.json")
    verify_config("crypt/config/testdata/vectors.json", "crypt/config/testdata")
    print("ok")
