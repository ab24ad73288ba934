//! ISO BMFF (MP4) box reading for CMAF init segments and fragments.
