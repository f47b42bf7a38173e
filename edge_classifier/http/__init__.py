"""The optional local HTTP interface: REST API, live MJPEG preview, Prometheus metrics, the web page's files.

Served by waitress (threads) with werkzeug for routing and request parsing; off unless `http.enabled`.
Handlers never touch the model: predictions go through the main loop's inbox, everything else reads
the runtime state and metrics the loop publishes.
"""
