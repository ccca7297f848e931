//! FILE_CHECK: `track_file` holds a number written by some other prober (keepalived's
//! answer to checking thousands of servers, issue #1495). As keepalived's track_file.c
//! reads it: an unreadable, empty or non-numeric file counts as 0, and `strtol` with
//! base 0 accepts decimal, `0x` hex and `0` octal after leading blanks.
//!
//! With `weight 0` (the default) a value of 0 is up and anything else down, the other
//! way round with `reverse`. With a weight, value × weight (negated by `reverse`) is
//! added to the real server's configured weight, which stops at 0 (quiescent, still
//! listed) rather than going down, as keepalived's `update_svr_wgt` does.

pub async fn check(
    path: &str,
    weight: i32,
    reverse: bool,
    base: u32,
) -> Result<Option<u32>, String> {
    let value = match tokio::fs::read_to_string(path).await {
        Ok(text) => strtol(&text),
        Err(_) => 0,
    };
    verdict(path, value, weight, reverse, base)
}

/// What a value read from the file means for the real server.
fn verdict(
    path: &str,
    value: i64,
    weight: i32,
    reverse: bool,
    base: u32,
) -> Result<Option<u32>, String> {
    if weight == 0 {
        return if (value == 0) != reverse {
            Ok(None)
        } else {
            Err(format!("track_file {path} holds {value}"))
        };
    }
    let sign = if reverse { -1 } else { 1 };
    let moved = i64::from(base) + value * i64::from(weight) * sign;
    Ok(Some(moved.clamp(0, i64::from(u32::MAX)) as u32))
}

/// C's `strtol(s, NULL, 0)` on what keepalived reads: leading blanks, a sign, then a
/// decimal, `0x` hex or `0` octal number; whatever follows is ignored; no digits is 0.
fn strtol(s: &str) -> i64 {
    let t = s.trim_start();
    let (neg, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (radix, digits) = if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        (16, h)
    } else if t.starts_with('0') && t.len() > 1 {
        (8, &t[1..])
    } else {
        (10, t)
    };
    let end = digits
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(digits.len());
    let v = i64::from_str_radix(&digits[..end], radix)
        .unwrap_or(0)
        .clamp(i64::from(i32::MIN), i64::from(i32::MAX) + 1);
    if neg {
        -v
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_as_strtol_reads_them() {
        assert_eq!(strtol("0\n"), 0);
        assert_eq!(strtol("  12 apples"), 12);
        assert_eq!(strtol("-3"), -3);
        assert_eq!(strtol("0x1f"), 31);
        assert_eq!(strtol("010"), 8);
        assert_eq!(strtol("down"), 0);
        assert_eq!(strtol(""), 0);
    }

    #[test]
    fn unweighted_values_say_up_or_down() {
        assert_eq!(verdict("f", 0, 0, false, 1), Ok(None));
        assert!(verdict("f", 1, 0, false, 1).is_err());
        assert!(verdict("f", 0, 0, true, 1).is_err());
        assert_eq!(verdict("f", 7, 0, true, 1), Ok(None));
    }

    #[test]
    fn weighted_values_move_the_weight_down_to_zero() {
        assert_eq!(verdict("f", 2, 5, false, 10), Ok(Some(20)));
        assert_eq!(verdict("f", 2, 5, true, 10), Ok(Some(0)));
        assert_eq!(verdict("f", -1, 3, false, 10), Ok(Some(7)));
        assert_eq!(verdict("f", 0, 3, false, 10), Ok(Some(10)));
    }
}
