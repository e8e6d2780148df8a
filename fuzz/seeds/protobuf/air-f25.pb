
AIR-2026-F25-0001F25"œ
GB123456789000North Sea Container Line Ltd"'
1 Dock RoadIP11 3BT"
Felixstowe2GB*
Filing desk22:
TE+44 1394 604500:
EMfilings@nscl.example2.
GB123456789000North Sea Container Line LtdBNS04212GBJj

HKHKG	Hong Kong
GBLHRLondon HeathrowGB000084"HK"GB*˜¨Ö”2ŒŠÙ”J
GBLHRLondon HeathrowRÄ
N703HWB88122501
N741123-12345255*=Kowloon Electronics Ltd"
12 Nathan Road"	Hong Kong2HK222DCamden Gadgets Ltd"+
5 Camden High StreetNW1 7JE"London2GB22B
HKHKGJ
GBLONRp?Lithium-ion batteries packed with equipment (mobile telephones)8517131ÍÌÌÌÌU@J
BXKEL/LHR/0001R3481jHKjGBr0zYbÍÌÌÌÌU@