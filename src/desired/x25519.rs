//! X25519 public keys (RFC 7748), to compare a WireGuard peer's key with the link's own.
//!
//! The field arithmetic follows TweetNaCl: an element of GF(2^255 - 19) is 16 limbs of 16 bits
//! in i64. The code is not constant-time, which is fine for deriving a public key from a key
//! file that netnsctl already reads in full.

type Field = [i64; 16];

/// Propagates carries so that every limb fits in 16 bits again.
fn carry(o: &mut Field) {
    for i in 0..16 {
        o[i] += 1 << 16;
        let c = o[i] >> 16;
        if i < 15 {
            o[i + 1] += c - 1;
        } else {
            // 2^256 = 38 modulo 2^255 - 19.
            o[0] += 38 * (c - 1);
        }
        o[i] -= c << 16;
    }
}

/// Swaps `p` and `q` when `swap` is 1.
fn select(p: &mut Field, q: &mut Field, swap: i64) {
    let mask = !(swap - 1);
    for i in 0..16 {
        let t = mask & (p[i] ^ q[i]);
        p[i] ^= t;
        q[i] ^= t;
    }
}

fn pack(n: &Field) -> [u8; 32] {
    let mut t = *n;
    carry(&mut t);
    carry(&mut t);
    carry(&mut t);
    for _ in 0..2 {
        let mut m = [0i64; 16];
        m[0] = t[0] - 0xffed;
        for i in 1..15 {
            m[i] = t[i] - 0xffff - ((m[i - 1] >> 16) & 1);
            m[i - 1] &= 0xffff;
        }
        m[15] = t[15] - 0x7fff - ((m[14] >> 16) & 1);
        let borrow = (m[15] >> 16) & 1;
        m[14] &= 0xffff;
        select(&mut t, &mut m, 1 - borrow);
    }
    let mut out = [0u8; 32];
    for i in 0..16 {
        out[2 * i] = (t[i] & 0xff) as u8;
        out[2 * i + 1] = (t[i] >> 8) as u8;
    }
    out
}

fn unpack(n: &[u8; 32]) -> Field {
    let mut o = [0i64; 16];
    for i in 0..16 {
        o[i] = i64::from(n[2 * i]) + (i64::from(n[2 * i + 1]) << 8);
    }
    o[15] &= 0x7fff;
    o
}

fn add(a: &Field, b: &Field) -> Field {
    std::array::from_fn(|i| a[i] + b[i])
}

fn sub(a: &Field, b: &Field) -> Field {
    std::array::from_fn(|i| a[i] - b[i])
}

fn mul(a: &Field, b: &Field) -> Field {
    let mut t = [0i64; 31];
    for i in 0..16 {
        for j in 0..16 {
            t[i + j] += a[i] * b[j];
        }
    }
    for i in 0..15 {
        t[i] += 38 * t[i + 16];
    }
    let mut o: Field = std::array::from_fn(|i| t[i]);
    carry(&mut o);
    carry(&mut o);
    o
}

/// Returns `i` to the power p - 2, the inverse modulo p = 2^255 - 19.
fn invert(i: &Field) -> Field {
    let mut c = *i;
    for a in (0..=253).rev() {
        c = mul(&c, &c);
        if a != 2 && a != 4 {
            c = mul(&c, i);
        }
    }
    c
}

/// Multiplies the point with u-coordinate `point` by the clamped `scalar`.
fn scalar_mult(scalar: &[u8; 32], point: &[u8; 32]) -> [u8; 32] {
    let mut z = *scalar;
    z[31] = (z[31] & 127) | 64;
    z[0] &= 248;
    let x = unpack(point);
    let mut a = [0i64; 16];
    let mut b = x;
    let mut c = [0i64; 16];
    let mut d = [0i64; 16];
    a[0] = 1;
    d[0] = 1;
    let a24: Field = {
        let mut f = [0i64; 16];
        f[0] = 0xdb41;
        f[1] = 1;
        f
    };
    // Montgomery ladder over the bits of the clamped scalar, from the top.
    for i in (0..=254).rev() {
        let bit = i64::from((z[i >> 3] >> (i & 7)) & 1);
        select(&mut a, &mut b, bit);
        select(&mut c, &mut d, bit);

        let mut e = add(&a, &c);
        a = sub(&a, &c);
        c = add(&b, &d);
        b = sub(&b, &d);
        d = mul(&e, &e);
        let f = mul(&a, &a);
        a = mul(&c, &a);
        c = mul(&b, &e);
        e = add(&a, &c);
        a = sub(&a, &c);
        b = mul(&a, &a);
        c = sub(&d, &f);
        a = mul(&c, &a24);
        a = add(&a, &d);
        c = mul(&c, &a);
        a = mul(&d, &f);
        d = mul(&b, &x);
        b = mul(&e, &e);

        select(&mut a, &mut b, bit);
        select(&mut c, &mut d, bit);
    }
    pack(&mul(&a, &invert(&c)))
}

/// Returns the public key of an X25519 private key, as `wg pubkey` does.
pub fn public_key(private: &[u8; 32]) -> [u8; 32] {
    let mut base = [0u8; 32];
    base[0] = 9;
    scalar_mult(private, &base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(text: &str) -> [u8; 32] {
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        bytes.try_into().unwrap()
    }

    #[test]
    fn rfc7748_public_keys() {
        // RFC 7748 section 6.1: Alice's and Bob's key pairs.
        let pairs = [
            (
                "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
                "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
            ),
            (
                "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
                "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
            ),
        ];
        for (private, public) in pairs {
            assert_eq!(public_key(&hex(private)), hex(public), "{private}");
        }
    }
}
