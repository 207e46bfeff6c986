"""Sans-IO protocol codecs (DLMS/COSEM, Zigbee ZCL): bytes in, events out. Filled by the head-end issues."""
