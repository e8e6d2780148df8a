#!/usr/bin/env python3
"""Writes the JSON samples of schemas/examples/: one valid filing of every filing type of the
catalogue (schemas/codes/filing-types.txt), shaped by its data set (schemas/datasets.tsv), and
under invalid/ one filing per data set that breaks it (a required element removed, or an element
the set does not allow added).

The XML twins are written from these by the gateway itself, so that both forms carry the same
content: `ACI_BLESS=1 cargo test --test xml_filings`. Tests check that every sample validates,
that each twin has the same digest, and that every invalid sample is refused for its data set.

Dates lie in 2030 so that no sample is late on the day it is run.
Usage: python3 schemas/examples/make.py   (from anywhere; writes next to this file)
"""

import copy
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

DECLARANT = {
    "eori": "GB123456789000",
    "name": "North Sea Container Line Ltd",
    "address": {"street_and_number": "1 Dock Road", "postcode": "IP11 3BT", "city": "Felixstowe", "country": "GB"},
    "contact": {"name": "Filing desk"},
    "type_of_person": "2",
    "communications": [
        {"type": "TE", "identifier": "+44 1394 604500"},
        {"type": "EM", "identifier": "filings@nscl.example"},
    ],
}
CARRIER = {"eori": "GB123456789000", "name": "North Sea Container Line Ltd"}
SHANGHAI_TOOLS = {
    "name": "Shanghai Precision Tools Co",
    "address": {"street_and_number": "88 Pudong Avenue", "postcode": "200120", "city": "Shanghai", "country": "CN"},
    "type_of_person": "2",
}
HOLLAND_TOOLS = {
    "eori": "NL812345678",
    "name": "Holland Tool Import BV",
    "address": {"street_and_number": "Waalhaven 12", "postcode": "3089 JH", "city": "Rotterdam", "country": "NL"},
    "type_of_person": "2",
}
KOWLOON = {
    "name": "Kowloon Electronics Ltd",
    "address": {"street_and_number": "12 Nathan Road", "city": "Hong Kong", "country": "HK"},
    "type_of_person": "2",
}
CAMDEN = {
    "name": "Camden Gadgets Ltd",
    "address": {"street_and_number": "5 Camden High Street", "postcode": "NW1 7JE", "city": "London", "country": "GB"},
    "type_of_person": "2",
}
KENT = {
    "name": "Kent Hardware Ltd",
    "address": {"street_and_number": "3 Mill Lane", "postcode": "ME14 1XX", "city": "Maidstone", "country": "GB"},
    "type_of_person": "2",
}
JANE = {
    "name": "Jane Doe",
    "address": {"street_and_number": "1 Main Street", "postcode": "10001", "city": "New York", "country": "US"},
    "type_of_person": "1",
}
JOHN = {
    "name": "John Smith",
    "communications": [{"type": "EM", "identifier": "john.smith@example.org"}],
    "address": {"street_and_number": "2 High Street", "postcode": "SW1A 1AA", "city": "London", "country": "GB"},
    "type_of_person": "1",
}


def item(seq, description, hs, packages, kind, mass, marks=None, un=None):
    packaging = {"package_type": kind, "number_of_packages": packages}
    if marks:
        packaging["shipping_marks"] = marks
    out = {"sequence": seq, "description": description, "hs_code": hs, "gross_mass_kg": mass, "packagings": [packaging]}
    if un:
        out["un_numbers"] = un
    return out


TOOLS = [
    item(1, "Hand-operated spanners and wrenches of steel", "820411", 240, "CT", 3600.5, "NSCL/SHA/2026/001"),
    item(2, "Electric drills, hand-held, with self-contained motor", "846721", 120, "CT", 1450, "NSCL/SHA/2026/002"),
]
MORE_TOOLS = TOOLS + [
    item(3, "Circular saw blades of steel, for working metal", "820231", 60, "CT", 720.25, "NSCL/SHA/2026/003"),
    item(4, "Screwdrivers, hand-operated, with interchangeable bits", "820540", 300, "CT", 810, "NSCL/SHA/2026/004"),
    item(5, "Pliers, pincers and tweezers of base metal", "820320", 200, "CT", 640.75, "NSCL/SHA/2026/005"),
    item(6, "Angle grinders, electro-mechanical, hand-held", "846729", 80, "CT", 1120.4, "NSCL/SHA/2026/006"),
]
BATTERIES = [item(1, "Lithium-ion batteries packed with equipment (mobile telephones)", "851713", 12, "BX", 84.2, "KEL/LHR/0001", ["3481"])]
SWEATER = [item(1, "Knitted wool sweater", "611011", 1, "PC", 0.8)]
WRENCHES_ROAD = [item(1, "Hand-operated spanners and wrenches of steel", "820411", 18, "PX", 7200, "HTI/DVR/18")]


def totals(consignments):
    items = [i for c in consignments for i in c.get("goods_items", [])]
    packages = sum(p.get("number_of_packages", 0) for i in items for p in i["packagings"])
    mass = round(sum(i["gross_mass_kg"] for i in items), 6)
    return {"number_of_packages": packages, "gross_mass_kg": mass, "number_of_consignments": len(consignments)}


def equipment(consignments, number="CSQU3054383"):
    refs = [{"consignment": c["sequence"], "goods_item": i["sequence"]} for c in consignments for i in c.get("goods_items", [])]
    return [{
        "container_number": number,
        "seal_numbers": ["SH0098812"],
        "goods_items": refs,
        "size_and_type": "22G1",
        "packed_status": "B",
        "supplier_type": "2",
    }]


def sea(lrn, document, goods=TOOLS, mode="TRANSPORT_MODE_SEA"):
    consignment = {
        "sequence": 1,
        "transport_document": {"type": "N705", "number": document},
        "ucr": "6GB123456789000-SHA0001",
        "consignor": copy.deepcopy(SHANGHAI_TOOLS),
        "consignee": copy.deepcopy(HOLLAND_TOOLS),
        "place_of_acceptance": {"locode": "CNSHA"},
        "place_of_delivery": {"locode": "NLRTM"},
        "goods_items": copy.deepcopy(goods),
        "buyer": copy.deepcopy(HOLLAND_TOOLS),
        "seller": copy.deepcopy(SHANGHAI_TOOLS),
        "countries_of_routing": ["CN", "SG", "NL"],
        "container_indicator": "1",
        "transport_charges_method": "Y",
        "additional_actors": [{"role": "MF", "eori": "CN9876543210"}],
        "supporting_documents": [{"type": "N380", "reference_number": "INV-SHA-2026-0001"}],
    }
    manifest = {
        "lrn": lrn,
        "filing_type": "F10",
        "transport_mode": mode,
        "declarant": copy.deepcopy(DECLARANT),
        "carrier": copy.deepcopy(CARRIER),
        "conveyance": {"imo_number": "9319466", "voyage_number": "042W", "nationality": "GB", "name": "NORTH STAR"},
        "itinerary": {
            "place_of_loading": {"locode": "CNSHA", "name": "Shanghai"},
            "place_of_first_entry": {"locode": "NLRTM", "name": "Rotterdam"},
            "office_of_first_entry": "NL000396",
            "countries_of_routing": ["CN", "SG", "NL", "GB"],
            "estimated_departure": "2030-12-01T08:00:00Z",
            "estimated_arrival": "2030-12-29T06:00:00Z",
            "place_of_unloading": {"locode": "NLRTM", "name": "Rotterdam"},
        },
        "consignments": [consignment],
        "declaration_time": "2030-11-30T16:00:00Z",
    }
    manifest["transport_equipment"] = equipment(manifest["consignments"])
    manifest["totals"] = totals(manifest["consignments"])
    return manifest


def inland():
    m = sea("IWW-2026-000001", "RHEIN-2026-0042", mode="TRANSPORT_MODE_INLAND_WATERWAY")
    c = m["consignments"][0]
    c["transport_document"] = {"type": "N760", "number": "RHEIN-2026-0042"}
    c["place_of_acceptance"] = {"locode": "CHBSL"}
    c["countries_of_routing"] = ["CH", "FR", "DE", "NL"]
    c["passive_means"] = [{"identification": "02326583", "type_of_identification": "80", "nationality": "NL"}]
    m["conveyance"] = {"imo_number": "8814275", "voyage_number": "RH-2026-118", "nationality": "NL", "name": "RIJNSTROOM"}
    m["itinerary"].update({
        "place_of_loading": {"locode": "CHBSL", "name": "Basel"},
        "place_of_first_entry": {"locode": "DEDUI", "name": "Duisburg"},
        "countries_of_routing": ["CH", "FR", "DE", "NL"],
        "estimated_departure": "2030-12-05T06:00:00Z",
        "estimated_arrival": "2030-12-08T18:00:00Z",
        "place_of_unloading": {"locode": "NLRTM", "name": "Rotterdam"},
    })
    del m["itinerary"]["office_of_first_entry"]
    return m


def awb(prefix, body):
    """An air waybill number whose last digit is the first seven of the serial mod 7."""
    return f"{prefix}-{body}{int(body) % 7}"


def air(lrn, filing_type, house, master, mode="TRANSPORT_MODE_AIR", flight="NS0421"):
    consignment = {
        "sequence": 1,
        "transport_document": {"type": "N703", "number": house},
        "master_document": {"type": "N741", "number": master},
        "consignor": copy.deepcopy(KOWLOON),
        "consignee": copy.deepcopy(CAMDEN),
        "place_of_acceptance": {"locode": "HKHKG"},
        "place_of_delivery": {"locode": "GBLON"},
        "goods_items": copy.deepcopy(BATTERIES),
        "countries_of_routing": ["HK", "GB"],
        "transport_charges_method": "Y",
        "container_indicator": "0",
    }
    manifest = {
        "lrn": lrn,
        "filing_type": filing_type,
        "transport_mode": mode,
        "declarant": copy.deepcopy(DECLARANT),
        "carrier": copy.deepcopy(CARRIER),
        "conveyance": {"flight_number": flight, "nationality": "GB"},
        "itinerary": {
            "place_of_loading": {"locode": "HKHKG", "name": "Hong Kong"},
            "place_of_first_entry": {"locode": "GBLHR", "name": "London Heathrow"},
            "office_of_first_entry": "GB000084",
            "countries_of_routing": ["HK", "GB"],
            "estimated_departure": "2030-12-02T01:30:00Z",
            "estimated_arrival": "2030-12-02T14:05:00Z",
            "place_of_unloading": {"locode": "GBLHR", "name": "London Heathrow"},
        },
        "consignments": [consignment],
    }
    manifest["totals"] = totals(manifest["consignments"])
    return manifest


RECEPTACLE = "USJFKAGBLHRAAUN60001001000008"


def postal(lrn, filing_type, item_id):
    consignment = {
        "sequence": 1,
        "transport_document": {"type": "N750", "number": item_id},
        "consignor": copy.deepcopy(JANE),
        "consignee": copy.deepcopy(JOHN),
        "place_of_acceptance": {"locode": "USNYC"},
        "place_of_delivery": {"locode": "GBLON"},
        "goods_items": copy.deepcopy(SWEATER),
        "receptacle_ids": [RECEPTACLE],
    }
    manifest = {
        "lrn": lrn,
        "filing_type": filing_type,
        "transport_mode": "TRANSPORT_MODE_POSTAL",
        "declarant": copy.deepcopy(DECLARANT),
        "carrier": copy.deepcopy(CARRIER),
        "itinerary": {
            "place_of_loading": {"locode": "USJFK", "name": "New York JFK"},
            "place_of_first_entry": {"locode": "GBLHR"},
            "office_of_first_entry": "GB000084",
            "countries_of_routing": ["US", "GB"],
            "estimated_departure": "2030-12-02T22:00:00Z",
            "estimated_arrival": "2030-12-03T09:30:00Z",
            "place_of_unloading": {"locode": "GBLHR", "name": "London Heathrow"},
        },
        "consignments": [consignment],
    }
    manifest["totals"] = totals(manifest["consignments"])
    return manifest


def road():
    consignment = {
        "sequence": 1,
        "transport_document": {"type": "N730", "number": "CMR-0045127"},
        "consignor": copy.deepcopy(HOLLAND_TOOLS),
        "consignee": copy.deepcopy(KENT),
        "place_of_acceptance": {"locode": "NLRTM"},
        "place_of_delivery": {"locode": "GBMAI"},
        "goods_items": copy.deepcopy(WRENCHES_ROAD),
        "countries_of_routing": ["NL", "BE", "FR", "GB"],
        "container_indicator": "0",
        "transport_charges_method": "Y",
        "passive_means": [{"identification": "OX-12-NL", "type_of_identification": "31", "nationality": "NL"}],
    }
    manifest = {
        "lrn": "ROAD-2026-000001",
        "filing_type": "F50",
        "transport_mode": "TRANSPORT_MODE_ROAD",
        "declarant": copy.deepcopy(DECLARANT),
        "carrier": copy.deepcopy(CARRIER),
        "conveyance": {"vehicle_registration": "NL-12-BXT", "nationality": "NL"},
        "itinerary": {
            "place_of_loading": {"locode": "NLRTM"},
            "place_of_first_entry": {"locode": "GBDVR", "name": "Dover"},
            "office_of_first_entry": "GB000060",
            "countries_of_routing": ["NL", "BE", "FR", "GB"],
            "estimated_departure": "2030-12-03T05:00:00Z",
            "estimated_arrival": "2030-12-03T13:30:00Z",
            "place_of_unloading": {"locode": "GBMAI", "name": "Maidstone"},
        },
        "consignments": [consignment],
    }
    manifest["totals"] = totals(manifest["consignments"])
    return manifest


def rail():
    consignment = {
        "sequence": 1,
        "transport_document": {"type": "N720", "number": "CIM-2026-778812"},
        "consignor": copy.deepcopy(HOLLAND_TOOLS),
        "consignee": copy.deepcopy(KENT),
        "place_of_acceptance": {"locode": "PLMAL"},
        "place_of_delivery": {"locode": "DEHAM"},
        "goods_items": copy.deepcopy(WRENCHES_ROAD),
        "countries_of_routing": ["PL", "DE"],
        "container_indicator": "0",
        "transport_charges_method": "Y",
        "passive_means": [{"identification": "318045123456", "type_of_identification": "20", "nationality": "PL"}],
    }
    manifest = {
        "lrn": "RAIL-2026-000001",
        "filing_type": "F51",
        "transport_mode": "TRANSPORT_MODE_RAIL",
        "declarant": copy.deepcopy(DECLARANT),
        "carrier": copy.deepcopy(CARRIER),
        "conveyance": {"train_number": "DB-45127", "nationality": "DE"},
        "itinerary": {
            "place_of_loading": {"locode": "PLMAL", "name": "Malaszewicze"},
            "place_of_first_entry": {"locode": "DEHAM", "name": "Hamburg"},
            "countries_of_routing": ["PL", "DE"],
            "estimated_departure": "2030-12-04T06:00:00Z",
            "estimated_arrival": "2030-12-05T09:00:00Z",
        },
        "consignments": [consignment],
    }
    manifest["totals"] = totals(manifest["consignments"])
    return manifest


def drop(manifest, *fields):
    for c in manifest["consignments"]:
        for f in fields:
            c.pop(f, None)


def house(m, house_number, master_number):
    """A house-level consignment under a master bill."""
    c = m["consignments"][0]
    c["transport_document"] = {"type": "N714", "number": house_number}
    c["master_document"] = {"type": "N704", "number": master_number}


def samples():
    """(file name, manifest) of every valid sample."""
    out = []
    f10 = sea("SEA-2026-000001", "NSCL2026SHA0001")
    out.append(("sea-f10", f10))
    large = sea("SEA-2026-000002", "NSCL2026SHA0002", goods=MORE_TOOLS)
    large["consignments"][0]["additional_information"] = [{"code": "00200", "text": "Several occurrences of the same goods"}]
    out.append(("sea-f10-large", large))
    out.append(("inland-f10", inland()))

    f11 = sea("SEA-2026-F11-0001", "unused")
    f11["filing_type"] = "F11"
    house(f11, "NSCLH2026F11001", "NSCL2026F11M01")
    out.append(("sea-f11", f11))

    for filing_type in ("F12", "F13"):
        m = sea(f"SEA-2026-{filing_type}-0001", f"NSCL2026{filing_type}M01")
        m["filing_type"] = filing_type
        m["consignments"][0]["transport_document"]["type"] = "N704" if filing_type == "F12" else "N705"
        m["next_filing_party"] = {"eori": "NL812345678"}
        drop(m, "buyer", "seller")
        out.append((f"sea-{filing_type.lower()}", m))

    f14 = sea("SEA-2026-F14-0001", "unused")
    f14["filing_type"] = "F14"
    house(f14, "NSCLH2026F14001", "NSCL2026F14M01")
    drop(f14, "buyer", "seller")
    f14["next_filing_party"] = {"eori": "NL812345678"}
    out.append(("sea-f14", f14))

    f15 = sea("SEA-2026-F15-0001", "unused")
    f15["filing_type"] = "F15"
    house(f15, "NSCLH2026F15001", "NSCL2026F15M01")
    out.append(("sea-f15", f15))

    f16 = sea("SEA-2026-F16-0001", "unused")
    f16["filing_type"] = "F16"
    house(f16, "NSCLH2026F16001", "NSCL2026F16M01")
    drop(f16, "buyer", "seller")
    out.append(("sea-f16", f16))

    # F17: the buyer and seller of a house consignment, nothing else of it.
    f17 = sea("SEA-2026-F17-0001", "unused")
    f17["filing_type"] = "F17"
    house(f17, "unused", "NSCL2026F17M01")
    c = f17["consignments"][0]
    for f in ("transport_document", "consignor", "consignee", "goods_items", "countries_of_routing",
              "container_indicator", "transport_charges_method", "place_of_acceptance", "place_of_delivery",
              "additional_actors", "supporting_documents"):
        c.pop(f, None)
    del f17["transport_equipment"], f17["totals"]
    del f17["itinerary"]["office_of_first_entry"]
    out.append(("sea-f17", f17))

    pre_loading = {"F20", "F21", "F22", "F32"}
    for n in range(20, 30):
        filing_type = f"F{n}"
        m = air(f"AIR-2026-{filing_type}-0001", filing_type, f"HWB8812{n}01", awb("123", f"12345{n}"))
        if filing_type == "F23":
            drop(m, "countries_of_routing", "container_indicator", "transport_charges_method")
        out.append((f"air-{filing_type.lower()}", m))
    assert pre_loading

    for n in range(30, 35):
        filing_type = f"F{n}"
        m = air(f"EXP-2026-{filing_type}-0001", filing_type, f"EXP77881{n}01", awb("615", f"88120{n}"),
                mode="TRANSPORT_MODE_EXPRESS", flight="DH0108")
        if filing_type == "F32":
            drop(m, "countries_of_routing", "container_indicator", "transport_charges_method")
            m["consignments"][0]["ucr"] = "6GB123456789000-EXP3201"
            del m["itinerary"]["office_of_first_entry"]
        out.append((f"express-{filing_type.lower()}", m))

    for n in range(40, 46):
        filing_type = f"F{n}"
        m = postal(f"POST-2026-{filing_type}-0001", filing_type, f"CP1234567{n}US")
        if filing_type == "F44":
            # Postal items linked to their receptacle: the house document and the receptacle.
            c = m["consignments"][0]
            for f in ("consignor", "consignee", "goods_items", "place_of_acceptance", "place_of_delivery"):
                c.pop(f, None)
            del m["totals"]
        out.append((f"postal-{filing_type.lower()}", m))

    out.append(("road-f50", road()))
    out.append(("rail-f51", rail()))
    return out


def data_set_table():
    """{path: {filing type: cell}} from schemas/datasets.tsv."""
    lines = [l for l in open(os.path.join(HERE, "..", "datasets.tsv")) if l.strip() and not l.startswith("#")]
    header = lines[0].rstrip("\n").split("\t")
    table = {}
    for line in lines[1:]:
        cells = line.rstrip("\n").split("\t")
        table[cells[0]] = dict(zip(header[1:], cells[1:]))
    return table


PRESENT = {
    "consignments.buyer": copy.deepcopy(JOHN),
    "consignments.seller": copy.deepcopy(JANE),
    "consignments.receptacle_ids": [RECEPTACLE],
    "consignments.countries_of_routing": ["GB"],
    "consignments.container_indicator": "0",
    "consignments.transport_charges_method": "Y",
    "consignments.passive_means": [{"identification": "OX-12-NL", "type_of_identification": "31"}],
    "consignments.master_document": {"type": "N704", "number": "BREAKS-THE-SET"},
    "consignments.transport_document": {"type": "N714", "number": "BREAKS-THE-SET"},
    "consignments.goods_items": copy.deepcopy(SWEATER),
    "consignments.consignor": copy.deepcopy(JANE),
    "consignments.consignee": copy.deepcopy(JOHN),
    "next_filing_party": {"eori": "NL812345678"},
    "itinerary.office_of_first_entry": "GB000084",
    "transport_equipment": [{"container_number": "CSQU3054383"}],
}


def set_path(manifest, path, value):
    parts = path.split(".")
    targets = [manifest]
    for part in parts[:-1]:
        nxt = []
        for t in targets:
            v = t.get(part)
            nxt.extend(v if isinstance(v, list) else [v] if v is not None else [])
        targets = nxt
    for t in targets:
        if value is None:
            t.pop(parts[-1], None)
        else:
            t[parts[-1]] = copy.deepcopy(value)


def invalid(name, manifest, table):
    """The sample broken for its data set: the required row most particular to it (required by
    the fewest sets) removed, else a row it does not allow added."""
    filing_type = manifest["filing_type"]
    broken = copy.deepcopy(manifest)
    broken["lrn"] = (manifest["lrn"][:18] + "-BAD")[:22]
    required = [p for p, cells in table.items() if cells.get(filing_type) == "R" and "goods_items." not in p]
    if required:
        path = min(required, key=lambda p: sum(c == "R" for c in table[p].values()))
        set_path(broken, path, None)
        return broken, path, 13
    for path, cells in table.items():
        if cells.get(filing_type) == "N" and path in PRESENT:
            set_path(broken, path, PRESENT[path])
            return broken, path, 15
    raise SystemExit(f"{name}: no row of its data set to break")


def main():
    table = data_set_table()
    os.makedirs(os.path.join(HERE, "invalid"), exist_ok=True)
    index = ["# name\tfiling type\tcode\telement (13: required by the set, removed; 15: not allowed, added)"]
    for name, manifest in samples():
        with open(os.path.join(HERE, f"{name}.json"), "w") as f:
            json.dump(manifest, f, indent=2, ensure_ascii=False)
            f.write("\n")
        if name == "sea-f10-large":
            continue
        broken, path, code = invalid(name, manifest, table)
        with open(os.path.join(HERE, "invalid", f"{name}-dataset.json"), "w") as f:
            json.dump(broken, f, indent=2, ensure_ascii=False)
            f.write("\n")
        index.append(f"{name}-dataset\t{manifest['filing_type']}\t{code}\t{path}")
    with open(os.path.join(HERE, "invalid", "datasets.tsv"), "w") as f:
        f.write("\n".join(index) + "\n")


if __name__ == "__main__":
    main()
