"""Sans-IO protocol codecs (DLMS/COSEM, Zigbee ZCL): bytes in, events out."""
