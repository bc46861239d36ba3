"""The capture bench's memory readings and its report (the bench itself runs in `make bench`)."""
from __future__ import annotations

import os

from openvtuber.bridge import bench_capture as bc


def test_memory_of_this_process_reads_rss_and_private_pages():
    rss, private = bc._memory_mb(os.getpid())
    assert rss > 10.0 and 0.0 < private <= rss
    assert bc._memory_mb(2 ** 22 + 7) == (0.0, 0.0)          # no such process: zeros, no error


def test_start_and_end_are_medians_of_a_minute_of_readings():
    snaps = [bc.Snapshot(t, rss={"bridge": r, "browser": 1000.0 + r}, uss={"bridge": r / 2, "browser": r})
             for t, r in ((0, 100.0), (10, 140.0), (20, 102.0))]
    m = bc._memory_median(snaps)
    assert m["rss"] == {"bridge": 102.0, "browser": 1102.0}     # the 140 MB spike does not count
    assert m["uss"] == {"bridge": 51.0, "browser": 102.0}


def test_report_names_growth_and_the_processes_that_came_late():
    r = {"camera": "memory", "size": "1280x720", "seconds": 60.0, "camera_fps": 30.0, "fps_target": 30,
         "new_frame_fps": 18.0, "tracking_fps": 30.0, "tracking_ms": 5.5,
         "vmc_latency_ms": {"p50": 6.0, "p99": 9.0, "n": 1800}, "vmc_read_ms": {"p50": 6.1, "p99": 9.4},
         "cpu_percent": {"bridge": 70.0},
         "rss_mb_start": {"bridge": 170.0, "browser": 1040.0}, "uss_mb_start": {"bridge": 150.0, "browser": 280.0},
         "soak_s": 600, "rss_mb_end": {"bridge": 171.0, "browser": 1045.0}, "rss_growth_mb": {"bridge": 1.0, "browser": 5.0},
         "uss_mb_end": {"bridge": 150.5, "browser": 281.0}, "uss_growth_mb": {"bridge": 0.5, "browser": 1.0},
         "browser_processes": {"start": ["browser", "renderer"], "end": ["browser", "renderer", "utility:X"]}}
    r["gc_pauses"] = {"gen0": {"n": 300, "max_ms": 0.3}, "gen2": {"n": 1, "max_ms": 3.4}}
    r["heap_trims"] = {"n": 20, "longest_ms": 2.9, "period_s": 30.0}
    text = bc.format_result(r)
    assert "p50 6.00 ms, p99 9.00 ms (n=1800; goal p99 <= 10 ms); read by the receiver: p50 6.10, p99 9.40 ms" in text
    assert "GC pauses       gen0: 300 (longest 0.3 ms), gen2: 1 (longest 3.4 ms)" in text
    assert "(+5.0) after 600 s; goal growth <= 10 MB" in text
    assert "browser private pages, last min. 281.0 MB (+1.0)" in text
    assert "started during the soak: utility:X; ended: none" in text
    assert ("heap trims      20, longest 2.9 ms (the free pages inside the bridge's heap handed back every 30 s)"
            in text)


def test_gc_pauses_are_counted_per_generation():
    import gc

    with bc.GcPauses() as pauses:
        gc.collect()
    assert pauses.summary()["gen2"]["n"] >= 1 and pauses.summary()["gen2"]["max_ms"] >= 0.0
    assert pauses not in gc.callbacks


def test_vmc_arrival_is_the_sockets_time_and_no_later_than_the_receivers_read():
    """The receiver process stamps each bundle when it reached its socket (the kernel's
    timestamp), so its own wait for a CPU is reported apart from the bridge's latency."""
    import socket
    import time
    from types import SimpleNamespace

    from openvtuber.protocols.vmc_encode import encode_frame
    from openvtuber.protocols.pose import AvatarPose

    vmc = bc.VmcLatency(fps=30.0)
    try:
        handed = time.monotonic()
        vmc.source = SimpleNamespace(read_at={3: handed})
        out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for datagram in encode_frame(AvatarPose(t=3 / 30.0, frame=3, found=True), 3 / 30.0).datagrams:
            out.sendto(datagram, ("127.0.0.1", vmc.port))
        out.close()
        time.sleep(0.3)
        arrived, read = vmc.latencies(handed - 1.0, handed + 1.0)
    finally:
        vmc.close()
    assert len(arrived) == 1 and len(read) == 1
    assert 0.0 <= arrived[0] <= read[0] < 300.0
