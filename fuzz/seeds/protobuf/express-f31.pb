
EXP-2026-F31-0001F31"ê
GB123456789000North Sea Container Line Ltd"'
1 Dock RoadIP11 3BT"
Felixstowe2GB*4
Filing desk+44 1394 604500filings@nscl.example222.
GB123456789000North Sea Container Line LtdBDH01082GBJj

HKHKG	Hong Kong
GBLHRLondon HeathrowGB000084"HK"GB*ò®÷î2åäŸîJ
GBLHRLondon HeathrowR≈
N703EXP778813101
N741615-88120314*=Kowloon Electronics Ltd"
12 Nathan Road"	Hong Kong2HK222DCamden Gadgets Ltd"+
5 Camden High StreetNW1 7JE"London2GB22B
HKHKGJ
GBLONRp?Lithium-ion batteries packed with equipment (mobile telephones)8517131ÕÃÃÃÃU@J
BXKEL/LHR/0001R3481jHKjGBr0zYbÕÃÃÃÃU@