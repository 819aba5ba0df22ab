"""The host's background work runs as periodic tasks: expired uploads and old bulk-download zips are collected, and
deferred zips are claimed and built (tests/test_background_jobs.py tells that story)."""
from __future__ import annotations


async def test_the_host_schedules_cleanups_and_its_zip_builder(jp_serverapp, jp_fetch) -> None:
    host = jp_serverapp.web_app.settings["flow"]

    assert [task.name for task in host.periodic.tasks] == ["expire-uploads", "expire-zips", "zip-jobs"]
    assert await host.periodic.run_now("expire-uploads") == 0
    assert await host.periodic.run_now("expire-zips") == 0
    assert await host.periodic.run_now("zip-jobs") == 0  # nothing waiting to be built
