# headend: `make run` starts the demo catalog, `make test` runs every test.
# Both install what they need on Debian 12 first, idempotently.

SHELL := /bin/bash
CARGO ?= cargo
LISTEN ?= 127.0.0.1:8080
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian 12 packages: GStreamer 1.22 (dev headers for gstreamer-rs 0.24, the plugin sets
# the pipelines use; gstreamer1.0-x has textoverlay and clockoverlay, for test:// and
# the "Off air" slate), ffmpeg/ffprobe (test decoders and senders), curl (HTTP/2
# checks), iproute2 and util-linux (network namespaces for multicast tests),
# python3-gi with the RTSP server GIR, nginx's RTMP module and openssl (the RTSP, RTMP
# and HTTPS servers of tests/sources.rs); for `make bench`, nginx (the origin's
# anchor), wrk (the load generator) and GNU time (a child's CPU time and peak memory);
# chromium and chromium-driver, the browser that plays the operator page in
# tests/operator_page.rs; libswscale-dev, FFmpeg's scaler that the ladder's scaling
# element links to (src/pipeline/swscale.rs).
APT_PACKAGES := pkg-config libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libswscale-dev \
	gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good \
	gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav \
	gstreamer1.0-x ffmpeg curl iproute2 util-linux \
	python3-gi gir1.2-gst-rtsp-server-1.0 libnginx-mod-rtmp openssl \
	nginx wrk time chromium chromium-driver

DEMO_CLIP := var/media/demo.mp4
# The demo VOD asset of manifests/vod.yaml: a clip, English and French subtitles, a poster.
DEMO_VOD := var/media/vod-demo.mp4
DEMO_VOD_FILES := $(DEMO_VOD) var/media/vod-demo.en.vtt var/media/vod-demo.fr.vtt var/media/vod-demo.jpg
CATALOG := manifests/demo.yaml manifests/vod.yaml pipelines/ladders.yaml
# VOD assets are ingested into and served from $(DATA)/vod.
DATA ?= var/data

.PHONY: help deps media build run check test lint bench clean

help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

deps: ## Install missing Debian packages (only those not installed).
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
		echo "Installing:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

media: $(DEMO_CLIP) $(DEMO_VOD_FILES) ## Generate the demo clip the file:// channel loops and the demo VOD asset.

# 20 s of 720p25 with a moving test card and a 440 Hz tone, made by ffmpeg (no download).
$(DEMO_CLIP): | deps
	@mkdir -p $(dir $@)
	ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 \
		-t 20 -c:v libx264 -preset veryfast -g 50 -pix_fmt yuv420p -c:a aac -b:a 128k -shortest $@.tmp.mp4
	mv $@.tmp.mp4 $@

# 12 s of 720p25 with a different test card and a 660 Hz tone, for VOD.
$(DEMO_VOD): | deps
	@mkdir -p $(dir $@)
	ffmpeg -v error -y -f lavfi -i testsrc=size=1280x720:rate=25 -f lavfi -i sine=frequency=660:sample_rate=48000 \
		-t 12 -c:v libx264 -preset veryfast -g 50 -pix_fmt yuv420p -c:a aac -b:a 128k -shortest $@.tmp.mp4
	mv $@.tmp.mp4 $@

var/media/vod-demo.%.vtt: | deps
	@mkdir -p $(dir $@)
	@case $* in \
		en) a="Welcome to the headend"; b="One encode, every screen" ;; \
		*) a="Bienvenue sur la tête de réseau"; b="Un encodage, tous les écrans" ;; \
	esac; \
	printf 'WEBVTT\n\n00:00:01.000 --> 00:00:05.000\n%s\n\n00:00:06.000 --> 00:00:11.000\n%s\n' "$$a" "$$b" > $@

var/media/vod-demo.jpg: | deps
	@mkdir -p $(dir $@)
	ffmpeg -v error -y -f lavfi -i testsrc=size=640x360 -frames:v 1 $@

build: deps ## Build the release binary.
	$(CARGO) build --release --locked

run: build media ## Start the headend on the demo catalog and ingest the demo VOD asset (Ctrl-C stops it).
	@echo
	@echo "The operator page (channels, thumbnails, VOD, a player): http://$(LISTEN)/"
	@echo "Open in VLC, ffplay, Safari or any HLS player once the channels are up (a few seconds):"
	@for c in $$(grep -E '^\s+- id:' manifests/demo.yaml | awk '{print $$3}'); do \
		echo "  http://$(LISTEN)/live/$$c/master.m3u8"; done
	@echo "VOD, once ingested in the background (seconds; the log says 'VOD asset ready.'):"
	@for a in $$(grep -E '^\s+- id:' manifests/vod.yaml | awk '{print $$3}'); do \
		echo "  http://$(LISTEN)/vod/$$a/master.m3u8"; \
		echo "  http://$(LISTEN)/vod/$$a/manifest.mpd"; done
	@echo
	./target/release/headend run --listen $(LISTEN) --data $(DATA) $(CATALOG)

check: build ## Validate the catalog files.
	./target/release/headend check manifests/channels.yaml pipelines/ladders.yaml
	./target/release/headend check manifests/vod.yaml pipelines/ladders.yaml
	./target/release/headend check $(CATALOG)

lint: deps ## rustfmt and clippy, warnings are errors.
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings

test: deps media lint ## Install what the tests need, then run every test.
	$(CARGO) test --locked

# Every bench that runs channels does so inside a private network namespace
# (unshare): the demo catalog sends multicast, and nothing of a benchmark may leave this
# machine. About 14 minutes on 2 cores; HEADEND_BENCH_QUICK=1 makes a rough run of a few
# minutes that writes to var/bench/ instead of docs/.
bench: deps media ## Measure latency, channel start, origin vs nginx, transcode vs ffmpeg, density; writes docs/benchmarks*.md.
	$(CARGO) bench --locked --bench live
	$(CARGO) bench --locked --bench iptv
	$(CARGO) bench --locked --bench origin
	$(CARGO) bench --locked --bench transcode
	$(CARGO) bench --locked --bench density

clean: ## Remove build output and generated media.
	$(CARGO) clean
	rm -rf var
