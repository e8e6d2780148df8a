
POST-2026-F45-0001F45"
GB123456789000North Sea Container Line Ltd"'
1 Dock RoadIP11 3BT"
Felixstowe2GB*4
Filing desk+44 1394 604500filings@nscl.example222.
GB123456789000North Sea Container Line LtdJ\

USJFKNew York JFK
GBLHRGB000084"US"GB*àèÚ”2˜¬İ”J
GBLHRLondon HeathrowRë
N750CP123456745US*3Jane Doe"$
1 Main Street10001"New York2US2126
John Smith"%
2 High StreetSW1A 1AA"London2GB21B
USNYCJ
GBLONR1Knitted wool sweater6110111š™™™™™é?J
PC¢USJFKAGBLHRAAUN60001001000008bš™™™™™é?