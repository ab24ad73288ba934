//! DASH MPDs over the same CMAF segments the HLS playlists list.
