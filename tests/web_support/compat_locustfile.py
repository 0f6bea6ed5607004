"""Locust's side of tests/web_locust_compat.rs: the same requests as the
locusta raw run there (GET /hello, GET /fail in turn), never waiting long."""

from locust import HttpUser, constant, task


class WebUser(HttpUser):
    wait_time = constant(0.01)

    @task
    def hello_then_fail(self):
        self.client.get("/hello")
        self.client.get("/fail")
