"""The only code that opens sockets, serial ports, MQTT or HTTP: collectors and their resilience."""
