# Build the two binaries, then ship them on a small base.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/...

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/softprohub /out/softprosim /usr/local/bin/
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/softprohub"]
CMD ["serve"]
