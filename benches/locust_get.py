"""benches/compare.py --tools locust: the same script shape as benches/lua/get.lua
in Locust's FastHttpUser (one task, one GET, no think time).

    taskset -c 1 locust -f benches/locust_get.py --headless -u 64 -r 64 -t 10s \
        -H http://127.0.0.1:PORT --csv PREFIX --only-summary
"""
from locust import FastHttpUser, constant, task


class U(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get("/")
