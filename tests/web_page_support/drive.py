"""Drive locusta's web page in headless Chromium, as a user would.

Called by tests/web_page.rs with the page's URL and a directory for
screenshots: open the page, start a swarm from the form, see the stats
table fill, the charts draw, the failures, exceptions and workers tabs fill,
raise the users from the edit form, stop, reset the stats. One screenshot per step
(NN-step.png), and failed.png with the browser's console on a failure.

Needs Python `selenium` (pinned in .ci/run), `/usr/bin/chromium` and
`/usr/bin/chromedriver` (Debian's `chromium` and `chromium-driver`). It
never downloads anything: the driver's path is given, and Selenium
Manager is told to stay offline.

Usage: drive.py URL SCREENSHOT_DIR EXPECTED_WORKERS
Exit 0 when every step passed; else 1 with the step that failed.
"""

import json
import os
import sys
import time

os.environ["SE_OFFLINE"] = "true"  # Selenium Manager: never fetch a driver

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 15  # seconds any one step may take

# In the page: does each chart's canvas hold pixels of its first series'
# colour (a drawn line, not just axes and grid)? -> [[id, points, pixels]]
# arguments[0]: another colour to count instead (the check's control).
CHART_PIXELS_JS = """
return [...document.querySelectorAll('.chart')].map((el) => {
  const canvas = el.querySelector('canvas');
  if (!canvas || !el.dataset.color) return [el.id, 0, 0];
  const hex = arguments[0] || el.dataset.color;
  const want = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  const img = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let hits = 0;
  for (let i = 0; i < img.length; i += 4) {
    if (img[i + 3] > 200 && Math.abs(img[i] - want[0]) + Math.abs(img[i + 1] - want[1])
        + Math.abs(img[i + 2] - want[2]) < 60) hits++;
  }
  return [el.id, Number(el.dataset.points || 0), hits];
});
"""

# In the page: the stats table as [[type, name, requests, fails], ...].
STATS_ROWS_JS = """
return [...document.querySelectorAll('#stats-table tbody tr')].map((tr) =>
  [...tr.cells].slice(0, 4).map((td) => td.textContent));
"""


def log(step, **facts):
    print(json.dumps({"step": step, **facts}), flush=True)


class Page:
    def __init__(self, url, shots):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in (
            "--headless=new",
            "--no-sandbox",  # the CI container runs as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1400,1000",
            "--no-proxy-server",
        ):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(WAIT)
        self.driver.set_script_timeout(WAIT)
        self.url = url
        self.shots = shots
        self.shot_count = 0

    def shot(self, name):
        self.shot_count += 1
        path = os.path.join(self.shots, f"{self.shot_count:02d}-{name}.png")
        self.driver.save_screenshot(path)
        return path

    def js(self, code, *args):
        return self.driver.execute_script(code, *args)

    def el(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def until(self, what, check, timeout=WAIT):
        """Wait for check() to return a truthy value; TimeoutException names `what`."""
        return WebDriverWait(self.driver, timeout, poll_frequency=0.2).until(
            lambda _d: check(), message=f"timed out after {timeout}s waiting for: {what}"
        )

    def state(self):
        return self.js("return document.body.dataset.state")

    def text(self, css):
        return self.el(css).text

    def fill(self, css, value):
        field = self.el(css)
        field.clear()
        field.send_keys(str(value))

    def stats_rows(self):
        return self.js(STATS_ROWS_JS)

    def tab(self, name):
        self.el(f'.tabs button[data-tab="{name}"]').click()
        self.until(f"tab {name} shown", lambda: self.el(f"#tab-{name}").is_displayed())


def number(text):
    return int(text.replace(",", "") or 0)


def drive(page, expected_workers):
    # 1. The start form, at the base path as typed (no trailing slash).
    page.driver.get(page.url)
    page.until("state ready", lambda: page.state() == "ready")
    page.until("the start form", lambda: page.el("#start-form").is_displayed())
    page.until(f"{expected_workers} workers connected", lambda: page.text("#worker-count") == str(expected_workers))
    path = page.js("return location.pathname")
    assert path.endswith("/"), f"page did not move below its base path: {path}"
    log("start form", path=path, host=page.el("#start-host").get_attribute("value"), shot=page.shot("start-form"))

    # 2. A bad value gets the server's message, and nothing starts; then
    # start a swarm from the form.
    page.fill("#start-users", 4)
    page.fill("#start-rate", 100)
    page.fill("#start-run-time", "soon")
    page.el("#start-button").click()
    page.until("the run_time message", lambda: "run_time" in page.text("#message"))
    assert page.state() == "ready", f"a bad run_time started the run: {page.state()}"
    log("bad value", message=page.text("#message"), shot=page.shot("bad-value"))
    page.el("#start-run-time").clear()
    page.el("#start-button").click()
    page.until("the message to clear", lambda: not page.el("#message").is_displayed())
    page.until("state spawning or running", lambda: page.state() in ("spawning", "running"))
    page.until("the start form to hide", lambda: not page.el("#start").is_displayed())
    page.until("4 users", lambda: page.text("#users") == "4")
    log("started", state=page.state(), shot=page.shot("started"))

    # 3. The stats table fills; Aggregated is last, also when sorted.
    def filled():
        rows = page.stats_rows()
        named = [r for r in rows[:-1] if number(r[2]) > 0]
        return rows if len(named) >= 2 and rows[-1][1] == "Aggregated" else None

    rows = page.until("stats rows with requests", filled)
    page.el('#stats-table th[data-key="num_requests"]').click()
    rows = page.stats_rows()
    assert rows[-1][1] == "Aggregated", f"Aggregated not last after sorting: {rows}"
    counts = [number(r[2]) for r in rows[:-1]]
    assert counts == sorted(counts, reverse=True), f"not sorted by # Requests: {rows}"
    log("stats", rows=rows, shot=page.shot("stats"))

    # 4. The charts draw lines, not only axes.
    page.tab("charts")

    def drawn():
        charts = page.js(CHART_PIXELS_JS)
        return charts if len(charts) == 3 and all(p >= 3 and hits > 20 for _, p, hits in charts) else None

    charts = page.until("3 charts with drawn series", drawn)
    # The control: a colour no chart uses is found nowhere, so the count
    # above saw lines, not a canvas that matches anything.
    control = page.js(CHART_PIXELS_JS, "#00e5ff")
    assert all(hits == 0 for _, _, hits in control), f"unused colour found in charts: {control}"
    log("charts", charts=charts, shot=page.shot("charts"))

    # 5. Failures (the script's 404s) and exceptions (its Lua error).
    page.tab("failures")
    page.until("a failure row", lambda: "404" in page.text("#failures-table tbody"))
    log("failures", shot=page.shot("failures"))
    page.tab("exceptions")
    page.until("an exception row", lambda: "basket is empty" in page.text("#exceptions-table tbody"))
    log("exceptions", shot=page.shot("exceptions"))

    # 6. The workers tab lists the master's workers.
    page.tab("workers")
    worker_rows = lambda: page.driver.find_elements(By.CSS_SELECTOR, "#workers-table tbody tr")  # noqa: E731
    page.until(f"{expected_workers} workers", lambda: len(worker_rows()) == expected_workers)
    log("workers", workers=[r.text for r in worker_rows()], shot=page.shot("workers"))

    # 7. Raise the users from the edit form; the count follows.
    page.el("#edit-button").click()
    page.until("the edit form", lambda: page.el("#edit-form").is_displayed())
    page.fill("#edit-users", 10)
    page.fill("#edit-rate", 100)
    page.el("#edit-submit").click()
    page.until("10 users", lambda: page.text("#users") == "10")
    page.tab("workers")
    worker_users = "return [...document.querySelectorAll('#workers-table tbody tr')].map((tr) => tr.cells[2].textContent)"
    page.until("10 users over the workers", lambda: sum(number(u) for u in page.js(worker_users)) == 10)
    log("edited", users=page.text("#users"), shot=page.shot("edited"))

    # 8. The download links resolve below the base path.
    for href in ("stats/requests/csv", "stats/failures/csv", "exceptions/csv"):
        status = page.js(
            "return fetch(document.querySelector(`a[href='${arguments[0]}']`).href).then((r) => r.status)", href
        )
        assert status == 200, f"{href}: HTTP {status}"
    log("downloads")

    # 9. Stop.
    page.tab("stats")
    page.el("#stop-button").click()
    page.until("state stopped", lambda: page.state() == "stopped", timeout=WAIT + 10)
    page.until("the new test button", lambda: page.el("#new-button").is_displayed())
    log("stopped", state=page.state(), users=page.text("#users"), shot=page.shot("stopped"))

    # 10. Reset stats: with no load left, the counts go to zero.
    page.el("#reset-button").click()
    page.until("Aggregated back to 0 requests", lambda: page.stats_rows()[-1][1:3] == ["Aggregated", "0"])
    log("reset", rows=page.stats_rows(), shot=page.shot("reset"))


def main():
    url, shots, expected_workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    os.makedirs(shots, exist_ok=True)
    page = Page(url, shots)
    try:
        drive(page, expected_workers)
    except (AssertionError, TimeoutException) as e:
        log("FAILED", error=str(e).strip(), shot=page.shot("failed"))
        for entry in page.driver.get_log("browser"):
            log("browser console", entry=entry)
        return 1
    finally:
        page.driver.quit()
    log("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
