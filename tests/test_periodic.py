"""The host's housekeeping runs as periodic tasks: expired uploads and old bulk-download zips are collected."""
from __future__ import annotations


async def test_the_host_schedules_upload_and_zip_cleanup(jp_serverapp, jp_fetch) -> None:
    host = jp_serverapp.web_app.settings["flow"]

    assert [task.name for task in host.periodic.tasks] == ["expire-uploads", "expire-zips"]
    assert await host.periodic.run_now("expire-uploads") == 0
    assert await host.periodic.run_now("expire-zips") == 0
