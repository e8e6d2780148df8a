
POST-2026-F41-0001F41"œ
GB123456789000North Sea Container Line Ltd"'
1 Dock RoadIP11 3BT"
Felixstowe2GB*
Filing desk22:
TE+44 1394 604500:
EMfilings@nscl.example2.
GB123456789000North Sea Container Line LtdJ\

USJFKNew York JFK
GBLHRGB000084"US"GB*àèÚ”2˜¬Ý”J
GBLHRLondon HeathrowR‰
N750CP123456741US*3Jane Doe"$
1 Main Street10001"New York2US212T
John Smith"%
2 High StreetSW1A 1AA"London2GB21:
EMjohn.smith@example.orgB
USNYCJ
GBLONR1Knitted wool sweater6110111š™™™™™é?J
PC¢USJFKAGBLHRAAUN60001001000008bš™™™™™é?