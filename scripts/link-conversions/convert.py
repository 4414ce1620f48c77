#!/usr/bin/env python3
"""Re-frames a real Ethernet capture in other link layers, packet for packet: the IP packets,
timestamps and order are the recording's; only the link header changes. For link types no
machine here can record (Cisco HDLC serial links, 802.11 with radiotap or PPI headers). tshark
reads the results as it reads the original (pcaps/links/README.md).

usage: convert.py IN.pcap OUT_DIR
writes OUT_DIR/NAME.hdlc.pcap (LINKTYPE_C_HDLC 104), NAME.radiotap.pcap (LINKTYPE_IEEE802_11_RADIOTAP
127: radiotap with flags and rate, then an 802.11 QoS data frame with LLC/SNAP) and NAME.ppi.pcap
(LINKTYPE_PPI 192 around a plain 802.11 data frame, four addresses, as a WDS link has).
"""
import os
import struct
import sys

CLIENT_MAC = bytes.fromhex("020000000001")
AP_MAC = bytes.fromhex("020000000002")


def read_pcap(path):
    data = open(path, "rb").read()
    magic = data[:4]
    endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    header, link = data[:24], struct.unpack(endian + "I", data[20:24])[0]
    assert link == 1, "Ethernet captures only"
    at, frames = 24, []
    while at + 16 <= len(data):
        sec, frac, incl, orig = struct.unpack(endian + "IIII", data[at:at + 16])
        frames.append((sec, frac, data[at + 16:at + 16 + incl], orig))
        at += 16 + incl
    return endian, header, frames


def write_pcap(path, endian, header, link, frames):
    with open(path, "wb") as out:
        out.write(header[:20] + struct.pack(endian + "I", link))
        for sec, frac, frame, grew in frames:
            out.write(struct.pack(endian + "IIII", sec, frac, len(frame), len(frame)))
            out.write(frame)


def llc_snap(ethertype):
    return bytes([0xAA, 0xAA, 0x03, 0, 0, 0]) + ethertype


def radiotap_qos(eth):
    dst, src, ethertype, payload = eth[0:6], eth[6:12], eth[12:14], eth[14:]
    # radiotap v0: length 12, present = Flags (bit 1) | Rate (bit 2); flags 0, rate 54 Mb/s.
    radio = struct.pack("<BBHI", 0, 0, 12, 0x00000006) + bytes([0x00, 108, 0, 0])
    # QoS data (type 2, subtype 8) ToDS from the client side; addresses BSSID, SA, DA.
    fc = bytes([0x88, 0x01])
    hdr = fc + b"\x00\x00" + AP_MAC + src + dst + b"\x00\x00" + b"\x00\x00"
    return radio + hdr + llc_snap(ethertype) + payload


def ppi_wds(eth):
    dst, src, ethertype, payload = eth[0:6], eth[6:12], eth[12:14], eth[14:]
    ppi = struct.pack("<BBHI", 0, 0, 8, 105)
    # Data (type 2, subtype 0) with ToDS and FromDS: four addresses RA, TA, DA, SA.
    hdr = bytes([0x08, 0x03]) + b"\x00\x00" + AP_MAC + CLIENT_MAC + dst + b"\x00\x00" + src
    return ppi + hdr + llc_snap(ethertype) + payload


def hdlc(eth):
    return bytes([0x0F, 0x00]) + eth[12:14] + eth[14:]


def main():
    src, out_dir = sys.argv[1], sys.argv[2]
    name = os.path.basename(src).rsplit(".", 1)[0]
    endian, header, frames = read_pcap(src)
    for suffix, link, convert in (("hdlc", 104, hdlc), ("radiotap", 127, radiotap_qos),
                                  ("ppi", 192, ppi_wds)):
        out = [(s, f, convert(frame), o) for s, f, frame, o in frames]
        write_pcap(os.path.join(out_dir, f"{name}.{suffix}.pcap"), endian, header, link, out)


if __name__ == "__main__":
    main()
