
POST-2026-F44-0001F44"œ
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
GBLHRLondon HeathrowR9
N750CP123456744US¢USJFKAGBLHRAAUN60001001000008