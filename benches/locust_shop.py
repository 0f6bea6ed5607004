"""benches/compare.py --tools locust-shop: benches/lua/shop.lua's twin in
Locust's FastHttpUser (the same mix, weights, names, JSON bodies, cookie and
token, catch_response, and the 1 KB product list parsed), against the shop
locations of benches/nginx.conf.

    taskset -c 1 locust -f benches/locust_shop.py --headless -u 64 -r 64 -t 10s \
        -H http://127.0.0.1:PORT --csv PREFIX --only-summary
"""
import random

from locust import FastHttpUser, constant, task


class Shopper(FastHttpUser):
    wait_time = constant(0)

    def on_start(self):
        r = self.client.post("/api/login", json={"user": "demo", "password": "secret"})
        # locusta's script sets it as a default header; here every call passes it.
        self.auth = {"Authorization": f"Bearer {r.json()['token']}"}

    @task(5)
    def products(self):
        r = self.client.get("/api/products", headers=self.auth)
        if r.ok and len(r.json()["products"]) != 18:
            raise RuntimeError("product list: expected 18 products")

    @task(3)
    def product(self):
        self.client.get(f"/api/products/{random.randint(1, 500)}", name="/api/products/:id",
                        headers=self.auth)

    @task(2)
    def cart(self):
        with self.client.post("/api/cart", json={"sku": f"A-{random.randint(1, 40)}"},
                              headers=self.auth,
                              catch_response=True) as r:
            if r.status_code != 201:
                r.failure(f"cart not updated: HTTP {r.status_code}")

    @task(1)
    def checkout(self):
        self.client.post("/api/checkout", json={"pay": "card"}, headers=self.auth)
