//! Micro benchmarks of the HTTP client's CPU work per request, no sockets:
//! serializing a request and parsing a response. Run: `cargo bench --bench http`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use locusta::http::{write_request, DiscardBody, Method, ResponseParser};

fn bench_write_request(c: &mut Criterion) {
    let mut buf = Vec::with_capacity(1024);
    let headers = [
        ("Accept", "application/json"),
        ("Accept-Encoding", "gzip, deflate"),
        ("Authorization", "Bearer 3f1c2a9e7b5d4c8a"),
    ];
    c.bench_function("write_request GET + 3 headers", |b| {
        b.iter(|| {
            buf.clear();
            write_request(
                &mut buf,
                Method::Get,
                black_box("/products/42?color=red"),
                black_box("shop.example.com:8080"),
                black_box(&headers),
                b"",
            );
            black_box(buf.len())
        })
    });
}

/// Feed one whole response, as a read that got all of it would.
fn parse_once(parser: &mut ResponseParser, input: &[u8]) -> u64 {
    parser.start(false);
    let (used, done) = parser.feed(input, &mut DiscardBody).unwrap();
    assert!(done && used == input.len());
    parser.body_len()
}

fn bench_parse(c: &mut Criterion) {
    let mut length =
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Sat, 22 Nov 2025 04:00:00 GMT\r\n\
        Content-Type: application/json\r\nContent-Length: 1024\r\nConnection: keep-alive\r\n\r\n"
            .to_vec();
    length.extend(std::iter::repeat_n(b'x', 1024));

    let mut chunked =
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nDate: Sat, 22 Nov 2025 04:00:00 GMT\r\n\
        Content-Type: text/html\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        chunked.extend_from_slice(b"100\r\n");
        chunked.extend(std::iter::repeat_n(b'y', 256));
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");

    let mut parser = ResponseParser::new();
    let mut group = c.benchmark_group("ResponseParser::feed");
    group.throughput(Throughput::Elements(1));
    group.bench_function("200 Content-Length 1 KiB", |b| {
        b.iter(|| parse_once(&mut parser, black_box(&length)))
    });
    group.bench_function("200 chunked 4 x 256 B", |b| {
        b.iter(|| parse_once(&mut parser, black_box(&chunked)))
    });
    group.finish();
}

criterion_group!(benches, bench_write_request, bench_parse);
criterion_main!(benches);
