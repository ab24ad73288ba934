//! RFC 6381 `CODECS` strings from the codec configuration records in the caps.

/// `avc1.PPCCLL` from an `AVCDecoderConfigurationRecord` (ISO/IEC 14496-15 5.3.3.1):
/// byte 0 is the version (1), bytes 1..4 are profile_idc, the constraint flags and
/// level_idc, exactly the three bytes RFC 6381 wants in hex.
pub fn h264(avcc: &[u8]) -> Option<String> {
    match avcc {
        [1, profile, constraints, level, ..] => {
            Some(format!("avc1.{profile:02x}{constraints:02x}{level:02x}"))
        }
        _ => None,
    }
}

/// `mp4a.40.N` from an `AudioSpecificConfig` (ISO/IEC 14496-3 1.6.2.1): the first five
/// bits are the audio object type (2 = AAC-LC, 5 = HE-AAC), with 31 as an escape to a
/// six-bit extension.
pub fn aac(asc: &[u8]) -> Option<String> {
    let first = *asc.first()?;
    let object_type = match first >> 3 {
        31 => {
            let second = *asc.get(1)?;
            32 + (((first & 0x07) << 3) | (second >> 5))
        }
        0 => return None,
        n => n,
    };
    Some(format!("mp4a.40.{object_type}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn h264_high_level_31() {
        // x264's record for High@3.1: profile 100 (0x64), no constraints, level 31 (0x1f).
        let avcc = [0x01, 0x64, 0x00, 0x1f, 0xff, 0xe1, 0x00, 0x19];
        assert_eq!(h264(&avcc).as_deref(), Some("avc1.64001f"));
    }

    #[test]
    fn h264_constrained_baseline() {
        let avcc = [0x01, 0x42, 0xc0, 0x1e, 0xff];
        assert_eq!(h264(&avcc).as_deref(), Some("avc1.42c01e"));
    }

    #[test]
    fn h264_rejects_short_or_wrong_version() {
        assert_eq!(h264(&[0x01, 0x64]), None);
        assert_eq!(h264(&[0x00, 0x64, 0x00, 0x1f]), None);
    }

    #[test]
    fn aac_lc_and_escape() {
        // 0x1190: object type 2 (LC), 48 kHz, stereo.
        assert_eq!(aac(&[0x11, 0x90]).as_deref(), Some("mp4a.40.2"));
        // 0x2b: object type 5 (SBR / HE-AAC).
        assert_eq!(aac(&[0x2b, 0x92]).as_deref(), Some("mp4a.40.5"));
        // Escape 31 then 6 bits 0b000010 → 34.
        assert_eq!(aac(&[0xf8, 0x40]).as_deref(), Some("mp4a.40.34"));
        assert_eq!(aac(&[]), None);
        assert_eq!(aac(&[0x00]), None);
    }
}
