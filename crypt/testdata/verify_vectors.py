#!/usr/bin/env python3
"""Independent check of the cryptfs format v2 test vectors (reverse mode's too).

Written from docs/format.md alone (not from the Go code), with the Python
'cryptography' package and hashlib. File names use a pure-Python ChaCha20
(checked here against the 'cryptography' package's) and hashlib's BLAKE2b,
so the name construction is verified without OpenSSL or Go. Run from the
repository root:

    python3 crypt/testdata/verify_vectors.py

Exits 0 and prints "ok" when every vector matches the specification.
"""
import base64
import hashlib
import hmac
import json
import struct
import sys

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


MASK = 0xFFFFFFFF
SIGMA = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]


def rotl(v, c):
    return ((v << c) & MASK) | (v >> (32 - c))


def chacha_rounds(s):
    """The 20 ChaCha rounds (RFC 8439, section 2.3) on a 16-word state, in place."""
    def qr(a, b, c, d):
        s[a] = (s[a] + s[b]) & MASK; s[d] = rotl(s[d] ^ s[a], 16)
        s[c] = (s[c] + s[d]) & MASK; s[b] = rotl(s[b] ^ s[c], 12)
        s[a] = (s[a] + s[b]) & MASK; s[d] = rotl(s[d] ^ s[a], 8)
        s[c] = (s[c] + s[d]) & MASK; s[b] = rotl(s[b] ^ s[c], 7)

    for _ in range(10):
        qr(0, 4, 8, 12); qr(1, 5, 9, 13); qr(2, 6, 10, 14); qr(3, 7, 11, 15)
        qr(0, 5, 10, 15); qr(1, 6, 11, 12); qr(2, 7, 8, 13); qr(3, 4, 9, 14)


def hchacha20(key, nonce16):
    """HChaCha20 (draft-irtf-cfrg-xchacha, section 2.2)."""
    s = SIGMA + list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))
    chacha_rounds(s)
    return struct.pack("<8I", *(s[0:4] + s[12:16]))


def chacha20_xor(key, counter, nonce12, data):
    """ChaCha20 (RFC 8439, section 2.4) in pure Python."""
    out = bytearray()
    for i in range(0, len(data), 64):
        init = SIGMA + list(struct.unpack("<8I", key)) + [counter + i // 64] + list(struct.unpack("<3I", nonce12))
        s = list(init)
        chacha_rounds(s)
        block = struct.pack("<16I", *((a + b) & MASK for a, b in zip(s, init)))
        out += bytes(x ^ y for x, y in zip(data[i:i + 64], block))
    return bytes(out)


def xchacha20_xor(key, nonce24, data):
    """XChaCha20 (draft-irtf-cfrg-xchacha): HChaCha20 subkey, then ChaCha20 from counter 0."""
    return chacha20_xor(hchacha20(key, nonce24[:16]), 0, b"\0\0\0\0" + nonce24[16:], data)


def self_test_chacha20():
    """The pure-Python ChaCha20 must agree with the 'cryptography' package's."""
    key, nonce = bytes(range(32)), bytes(range(100, 112))
    data = bytes(i % 251 for i in range(300))
    ref = Cipher(algorithms.ChaCha20(key, struct.pack("<I", 7) + nonce), mode=None).encryptor().update(data)
    check(chacha20_xor(key, 7, nonce, data) == ref, "pure-Python ChaCha20 differs from cryptography's")


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
                info=b"cryptfs v2 " + purpose.encode()).derive(master)


def pad32(b):
    return b + b"\0" * (-len(b) % 32)


def check(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)


# File names (section 6): SIV = BLAKE2b-128(siv key, IV || padded),
# stored = base64url(SIV || padded XOR XChaCha20(enc key, SIV || 8 zero bytes)).
B64URL = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
MAX_PADDED = 256


def pad_name(name):
    """ISO/IEC 7816-4: 0x80, then zeros up to the next multiple of 16."""
    p = name + b"\x80"
    return p + b"\0" * (-len(p) % 16)


def siv_of(siv_key, iv, padded):
    return hashlib.blake2b(iv + padded, digest_size=16, key=siv_key).digest()


def seal_padded(siv_key, enc_key, iv, padded):
    siv = siv_of(siv_key, iv, padded)
    return siv, b64url(siv + xchacha20_xor(enc_key, siv + bytes(8), padded))


def encoded_len(n):
    raw = 16 + len(pad_name(b"x" * n))
    return (8 * raw + 5) // 6


def decode_name(siv_key, enc_key, iv, encoded, max_padded=MAX_PADDED):
    """Section 6.3, step by step. Returns (name, None) or (None, failing step)."""
    if len(encoded) > (8 * (16 + max_padded) + 5) // 6:
        return None, "length"
    data = encoded.encode()
    if not set(data) <= B64URL or len(data) % 4 == 1:
        return None, "base64"
    raw = base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    if b64url(raw) != encoded:  # non-zero trailing bits
        return None, "base64"
    n = len(raw) - 16
    if len(raw) < 32 or n % 16 != 0 or n > max_padded:
        return None, "length"
    siv = raw[:16]
    padded = xchacha20_xor(enc_key, siv + bytes(8), raw[16:])
    if not hmac.compare_digest(siv_of(siv_key, iv, padded), siv):
        return None, "siv"
    body = padded.rstrip(b"\0")
    if len(body) < 2 or body[-1] != 0x80 or len(padded) - (len(body) - 1) > 16:
        return None, "padding"
    name = body[:-1]
    if name in (b".", b"..") or b"/" in name or b"\0" in name or len(name) > 255:
        return None, "name"
    return name, None


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
            check(version != 2, h["name"])
        else:
            check(version == 2 and raw[2:].hex() == h["file_id"] and len(raw) == 18, h["name"])
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
    nk = (keys["name-siv"], keys["name-enc"])
    for n in v["names"]:
        iv = bytes.fromhex(n["dir_iv"])
        if "error" in n:
            check(n["error"] == "authentication failed", n["name"] + " error class")
            if "padded" in n:
                siv, enc = seal_padded(*nk, iv, bytes.fromhex(n["padded"]))
                check(siv.hex() == n["siv"] and enc == n["encoded"], n["name"] + " rebuild")
            name, step = decode_name(*nk, iv, n["encoded"])
            check(name is None and step == n["reject_at"], "%s rejected at %s, want %s" % (n["name"], step, n["reject_at"]))
            continue
        plain = n["plaintext"].encode()
        padded = pad_name(plain)
        check(padded.hex() == n["padded"], n["name"] + " padding")
        siv, enc = seal_padded(*nk, iv, padded)
        check(siv.hex() == n["siv"] and enc == n["encoded"], n["name"])
        check(decode_name(*nk, iv, enc) == (plain, None), n["name"] + " decode")
        if len(enc) > 255:
            lower = "longname." + b64url(hashlib.sha256(enc.encode()).digest())
            check(lower == n["lower"] and n["sidecar"] == ".cryptfs." + lower, n["name"] + " long name")
        else:
            check(n["lower"] == enc and "sidecar" not in n, n["name"] + " lower")
    for row in v["name_lengths"]:
        n = row["plain_len"]
        e = encoded_len(n)
        check(len(pad_name(b"x" * n)) == row["padded_len"] and e == row["encoded_len"]
              and row["long"] == (e > 255) and row["lower_len"] == (52 if e > 255 else e), "length row %d" % n)
    xk = (keys["xattr-name-siv"], keys["xattr-name-enc"])
    for x in v["xattrs"]:
        padded = pad_name(x["plaintext"].encode())
        siv, enc = seal_padded(*xk, bytes(16), padded)
        check(padded.hex() == x["padded"] and siv.hex() == x["siv"] and "user." + enc == x["lower"], x["name"] + " name")
        check(decode_name(*xk, bytes(16), enc, 160) == (x["plaintext"].encode(), None), x["name"] + " name decode")
        vn = bytes.fromhex(x["value_nonce"])
        sealed = vn + xseal(keys["xattr-value"], vn, bytes.fromhex(x["value"]), x["lower"].encode())
        check(sealed.hex() == x["sealed"], x["name"] + " value")
    for s in v["symlinks"]:
        nonce = bytes.fromhex(s["nonce"])
        stored = b64url(nonce + xseal(keys["symlink"], nonce, pad32(s["target"].encode()), b""))
        check(stored == s["stored"], s["name"])


def verify_reverse(path):
    """Reverse mode (section 13): values derived with keyed BLAKE2b from view
    paths and plaintexts; every stored value opens with the forward reader."""
    v = json.load(open(path))
    master = bytes.fromhex(v["master_key"])
    keys = {}
    for sk in v["subkeys"]:
        keys[sk["purpose"]] = subkey(master, sk["purpose"])
        check(sk["info"] == "cryptfs v2 " + sk["purpose"] and keys[sk["purpose"]].hex() == sk["key"], "subkey " + sk["purpose"])
    content, symkey, xkey = subkey(master, "content"), subkey(master, "symlink"), subkey(master, "xattr-value")

    def prf(purpose, n, msg):
        return hashlib.blake2b(msg, digest_size=n, key=keys[purpose]).digest()

    def file_id(p):
        return prf("reverse-file-id", 16, p.encode())

    for f in v["file_ids"]:
        check(file_id(f["path"]).hex() == f["value"], f["name"])
    for d in v["dir_ivs"]:
        want = bytes(16) if d.get("deterministic_names") else prf("reverse-dir-iv", 16, d["path"].encode())
        check(want.hex() == d["value"], d["name"])
    for b in v["blocks"]:
        fid = file_id(b["path"])
        ad = fid + struct.pack(">Q", b["block_number"])
        check(fid.hex() == b["file_id"] and ad.hex() == b["additional_data"], b["name"] + " file ID")
        if "error" in b:
            stored = bytes.fromhex(b["stored"])
            try:
                xopen(content, stored[:24], stored[24:], ad)
                check(False, b["name"] + " should fail")
            except InvalidTag:
                check(b["error"] == "authentication failed", b["name"])
            continue
        plain = bytes(i % 251 for i in range(4096)) if "plaintext_rule" in b else bytes.fromhex(b["plaintext"])
        nonce = prf("reverse-block-nonce", 24, ad + plain)
        check(nonce.hex() == b["nonce"], b["name"] + " nonce")
        stored = nonce + xseal(content, nonce, plain, ad)
        if "stored_sha256" in b:
            check(hashlib.sha256(stored).hexdigest() == b["stored_sha256"] and len(stored) == b["stored_len"]
                  and stored.hex().startswith(b["stored_prefix"]), b["name"])
        else:
            check(stored.hex() == b["stored"], b["name"])
        check(xopen(content, stored[:24], stored[24:], ad) == plain, b["name"] + " forward open")
    for s in v["symlinks"]:
        fid = file_id(s["path"])
        padded = pad32(s["target"].encode())
        nonce = prf("reverse-symlink-nonce", 24, fid + padded)
        stored = b64url(nonce + xseal(symkey, nonce, padded, b""))
        check(fid.hex() == s["file_id"] and nonce.hex() == s["nonce"] and stored == s["stored"], s["name"])
    for x in v["xattrs"]:
        fid = file_id(x["path"])
        _, enc = seal_padded(subkey(master, "xattr-name-siv"), subkey(master, "xattr-name-enc"), bytes(16),
                             pad_name(x["plaintext"].encode()))
        check("user." + enc == x["lower"], x["name"] + " name")
        lower = x["lower"].encode()
        value = bytes.fromhex(x["value"])
        nonce = prf("reverse-xattr-nonce", 24, fid + struct.pack(">H", len(lower)) + lower + value)
        sealed = nonce + xseal(xkey, nonce, value, lower)
        check(fid.hex() == x["file_id"] and nonce.hex() == x["nonce"] and sealed.hex() == x["sealed"], x["name"])
    for i in v["inodes"]:
        h = prf("reverse-inode", 8, bytes([i["attempt"], i["class"]]) + i["path"].encode())
        check(struct.unpack(">Q", h)[0] & ~(1 << 63) == i["inode"], i["name"])


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
    self_test_chacha20()
    verify_crypt("crypt/testdata/vectors.json")
    verify_reverse("crypt/testdata/reverse_vectors.json")
    verify_config("crypt/config/testdata/vectors.json", "crypt/config/testdata")
    print("ok")
